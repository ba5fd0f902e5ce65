// Every `agent-host:` configuration key, declared once: its Pulumi.yaml type, its default exactly
// as Pulumi.yaml writes it, its description, and whether it holds a secret. config.ts derives its
// key list and DEFAULTS from this table; tests/config-keys.test.ts fails when Pulumi.yaml's
// `config:` block, the README's configuration table or parseConfig drift from it. Adding a key is
// one entry here (with `host` when the host gets its value as it is), its rule (its line in
// config.ts's parseEachKey, whose result is StackConfig), the Pulumi.yaml and README lines the
// drift test names, and its tests. Pure: imports nothing.

interface KeyBase {
  /** Pulumi.yaml's description, word for word (one line). */
  readonly description: string;
  /**
   * The value is a credential: never echoed, never in plain state. Pulumi.yaml does not mark it
   * `secret: true` (the CLI would refuse its "" default as not encrypted); index.ts refuses it
   * stored in plain text instead.
   */
  readonly secret?: true;
  /**
   * The host.conf key that receives the parsed value as it is (a list space-separated, a boolean
   * as true/false, unset or empty = no line): host-config.ts writes it from here, so a key that
   * reaches the host this way is declared nowhere else on the stack's side. Keys the host gets
   * transformed (autoStopMinutes → AUTO_STOP_SECONDS, agentCount and the limits sized from it, the
   * claude* keys) are written by host-config.ts itself.
   */
  readonly host?: string;
}

/**
 * One key. `default` is Pulumi.yaml's, as YAML holds it; a key without one is required by the
 * Pulumi CLI (an optional key MUST have a default). An optional string's "" default reads "unset"
 * in the README, and config.ts reads "" as unset.
 */
export type ConfigKeySpec = KeyBase &
  (
    | { readonly type: "string"; readonly default?: string }
    | { readonly type: "integer"; readonly default?: number }
    | { readonly type: "boolean"; readonly default?: boolean }
    // Every list key is a list of strings (Pulumi.yaml `items: {type: string}`).
    | { readonly type: "array"; readonly default?: readonly string[] }
  );

/** In the order parseConfig's "Known keys" message lists them. */
export const CONFIG_KEY_TABLE = {
  agentCount: {
    type: "integer",
    default: 10,
    description:
      "Number of Claude Code agents (tmux windows agent-1..N). At least 1; at most what the machine's memory allows at 1.5 GiB per agent after 2 GiB for the host. Changing it reconciles in place, in seconds.",
  },
  hostCount: {
    type: "integer",
    default: 1,
    description:
      "Number of VMs (1-20), each with its own data disk, snapshots, address and agentCount agents. Adding a host creates only its resources; removing one deletes its VM and keeps its data disk (as destroy does), adopted again if it comes back.",
  },
  hostAgentCounts: {
    type: "string",
    default: "",
    description:
      "Optional. Agents per host, comma-separated, one number per host (e.g. 12,4); overrides agentCount host by host, and a change reconciles only the hosts whose number changed. When unset every host runs agentCount.",
  },
  machineType: {
    type: "string",
    default: "e2-standard-8",
    description:
      "Compute Engine machine type. Unknown types are allowed with a warning (agentCount is then not checked against memory). Changes stop and start the VM.",
  },
  image: {
    type: "string",
    default: "ubuntu-os-cloud/ubuntu-2404-lts-amd64",
    description:
      "Boot image family as project/family (an image with cloud-init). Never a pinned image; changing it replaces the VM (the data disk stays).",
  },
  bootDiskSizeGb: {
    type: "integer",
    default: 50,
    description: "Boot disk size in GB (20 or more). The boot disk holds only the OS and tools.",
  },
  dataDiskSizeGb: {
    type: "integer",
    default: 200,
    description:
      "Data disk size in GB (workspaces, the agent user's home, logins, conversations). Grows in place; shrinking is refused.",
  },
  dataDiskType: {
    type: "string",
    default: "pd-balanced",
    description:
      "Data disk type (pd-standard, pd-balanced, pd-ssd, pd-extreme). Changing it is refused (it would recreate the disk).",
  },
  sshSourceRanges: {
    type: "array",
    description:
      "Required. IPv4 CIDRs allowed to reach SSH (tcp:22) on the VM, e.g. your address /32. 0.0.0.0/0 only when written explicitly, with a warning. With connectVia iap exactly IAP's 35.235.240.0/20.",
  },
  connectVia: {
    type: "string",
    default: "public-ip",
    description:
      "How pulumi up and people reach the VM's SSH. public-ip gives the VM a static external address (SSH from sshSourceRanges); iap gives it none and tunnels through Identity-Aware Proxy (the deploying machine needs gcloud and roles/iap.tunnelResourceAccessor). Changing it updates the VM in place (the address is released or created).",
  },
  claudeCodeVersion: {
    host: "CLAUDE_CODE_VERSION",
    type: "string",
    default: "2.1.331",
    description:
      "Exact Claude Code release every agent runs. Auto-update is off; changing it updates the host and restarts the agents (conversations resume).",
  },
  claudeCodeSource: {
    host: "CLAUDE_CODE_SOURCE",
    type: "string",
    default: "npm",
    description:
      "Where the VM gets Claude Code, npm (the @anthropic-ai/claude-code package, native binary) or native (Anthropic's installer).",
  },
  dockerSource: {
    host: "DOCKER_SOURCE",
    type: "string",
    default: "docker-apt",
    description:
      "docker-apt (Docker's official apt repository, signing key checked against its fingerprint) or distro (Ubuntu's docker.io).",
  },
  dockerMode: {
    host: "DOCKER_MODE",
    type: "string",
    default: "rootless",
    description:
      "rootless (each agent gets its own rootless Docker daemon, started on first use, and no agent is in the docker group) or shared (one root daemon, every agent in the docker group: root-equivalent, for privileged containers only).",
  },
  anthropicApiKey: {
    type: "string",
    default: "",
    secret: true,
    description:
      "Optional secret. Anthropic API key (sk-ant-api...) or long-lived token from `claude setup-token` (sk-ant-oat...), for claudeProvider anthropic (refused with vertex). Unset means a person runs `sudo agentctl login` once on the VM; that one token serves every agent and persists on the data disk.",
  },
  sshAuthorizedKeys: {
    type: "array",
    default: [],
    description:
      "OpenSSH public keys of the people who may log in as the admin user (agent-admin), beside the stack's own deploy key.",
  },
  agentPermissionMode: {
    host: "PERMISSION_MODE",
    type: "string",
    default: "default",
    description:
      "Claude Code --permission-mode for every agent. default: asks before a tool use that changes something (a write, an install, most commands); commands Claude Code counts as read-only (ls, cat, grep, sleep ...) run without asking. manual: Claude Code 2.1's alias for default, no stricter. auto: its classifier decides, asking less. acceptEdits: file edits without asking. plan: plans only, runs nothing. dontAsk: never asks; what would ask is refused. bypassPermissions: never asks, runs everything.",
  },
  snapshotRetentionDays: {
    type: "integer",
    default: 7,
    description:
      "Daily snapshots of the data disk are kept this many days; 0 creates no snapshot schedule.",
  },
  spot: {
    type: "boolean",
    default: false,
    description:
      "Run as a Spot VM, stopped (not deleted) on preemption. Changing it replaces the VM (the data disk stays).",
  },
  deployPrivateKey: {
    type: "string",
    default: "",
    secret: true,
    description:
      "Optional secret. The private key the stack deploys with (OpenSSH or PEM). Unset means the stack generates an ED25519 key with @pulumi/tls.",
  },
  deleteDataDiskOnDestroy: {
    type: "boolean",
    default: false,
    description:
      "Delete the data disk on pulumi destroy. By default destroy leaves it (workspaces, logins, conversations) in the project.",
  },
  gitUserName: {
    host: "GIT_USER_NAME",
    type: "string",
    default: "",
    description:
      "Optional. The name the agents commit with (git user.name of the agent user). Set together with gitUserEmail.",
  },
  gitUserEmail: {
    host: "GIT_USER_EMAIL",
    type: "string",
    default: "",
    description:
      "Optional. The email the agents commit with (git user.email of the agent user). Set together with gitUserName.",
  },
  gitCredentials: {
    type: "string",
    default: "",
    secret: true,
    description:
      "Optional secret. A token for HTTPS remotes (or user:token), or an SSH private key for SSH remotes. Readable only by the agent user, through git (credential store scoped to the repository's host, or ssh); a GitHub token also logs in the GitHub CLI (gh).",
  },
  repository: {
    host: "GIT_REPOSITORY",
    type: "string",
    default: "",
    description:
      "Optional. The team's repository (https://host/path.git, ssh://[user@]host[:port]/path or user@host:path.git). When set, each new or empty workspace becomes a git worktree of it on its own branch agent-N; existing checkouts are never reset, cleaned or deleted.",
  },
  extraPackages: {
    host: "EXTRA_PACKAGES",
    type: "array",
    default: [],
    description:
      "Debian/Ubuntu package names installed for every agent (one toolchain for all), at first boot and on every pulumi up.",
  },
  claudeEnv: {
    host: "CLAUDE_ENV",
    type: "array",
    default: [],
    description:
      "NAME=value pairs set for every agent's Claude Code, e.g. HTTPS_PROXY=http://proxy:3128 or CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1. Never a credential: it lands in plain host.conf (the key and sign-in variables are refused). A change restarts the agents; conversations resume.",
  },
  claudeProvider: {
    type: "string",
    default: "anthropic",
    description:
      "Where the agents' Claude runs. vertex (recommended on GCP) calls Claude on Vertex AI in gcp:project as the VM's service account (granted roles/aiplatform.user; no secret anywhere); anthropic calls Anthropic's API with anthropicApiKey or one `agentctl login`. A change stops and starts the VM (its scopes change).",
  },
  vertexRegion: {
    type: "string",
    default: "global",
    description:
      "With claudeProvider vertex, the Vertex AI location the agents call (CLOUD_ML_REGION), one of global, us, eu, us-east5, us-central1, us-east1, us-east4, us-west1, europe-west1, europe-west4, asia-east1, asia-southeast1. The model must be enabled there.",
  },
  claudeModel: {
    type: "string",
    default: "",
    description:
      "Optional. The model every agent uses (ANTHROPIC_MODEL), an alias (sonnet, opus) or an ID (claude-sonnet-4-5-20250929; on Vertex AI claude-sonnet-4-5@20250929). Unset means Claude Code's default.",
  },
  anthropicBaseUrl: {
    type: "string",
    default: "",
    description:
      "Optional. An LLM gateway in front of Anthropic's API (Claude Code's base URL), https:// (http only on 127.0.0.1). Not a secret, so no user info, query string or key in it. Only with claudeProvider anthropic.",
  },
  vertexBaseUrl: {
    type: "string",
    default: "",
    description:
      "Optional. Another Vertex AI endpoint (ANTHROPIC_VERTEX_BASE_URL), e.g. a Private Service Connect endpoint ending in /v1. Only with claudeProvider vertex.",
  },
  workHoursStart: {
    type: "string",
    default: "",
    description:
      "Optional work hours. Time of day (HH:MM, 24-hour, in workTimeZone) GCE starts the VM on each of workDays, through an instance schedule. Unset means no scheduled start.",
  },
  workHoursStop: {
    type: "string",
    default: "",
    description:
      "Optional work hours. Time of day (HH:MM, 24-hour, in workTimeZone) GCE stops the VM on each of workDays (earlier than workHoursStart means the next morning). Unset means no scheduled stop.",
  },
  workDays: {
    type: "string",
    default: "Mon-Fri",
    description:
      "Days the work-hour schedule applies, as three-letter names, ranges and commas (Mon-Fri, Mon,Wed,Fri, Sun-Thu). Used only when workHoursStart or workHoursStop is set.",
  },
  workTimeZone: {
    type: "string",
    default: "UTC",
    description:
      "IANA time zone of workHoursStart and workHoursStop (Europe/Berlin, America/New_York); daylight saving time is followed.",
  },
  autoStopMinutes: {
    type: "integer",
    default: 60,
    description:
      "The VM powers itself off after this many minutes in which every agent was idle or waiting on a person, no agent ran a tool, and nobody was attached to tmux or logged in over SSH. 0 turns it off; otherwise 10 to 1440. Disks and the address stay; start it again with the startCommand output.",
  },
  notifyWebhookUrl: {
    type: "string",
    default: "",
    secret: true,
    description:
      "Optional secret. Where to send a message when an agent needs you (a permission, a question, signed out, stopped) and when it finishes a turn after real work - a Slack incoming webhook (https://hooks.slack.com/...), an ntfy topic URL (https://ntfy.sh/<topic>), or any https URL (JSON body, see docs/attention.md). Put slack, ntfy or json and a colon before the URL to choose the format. Stored root-only on the VM; unset means no notifications.",
  },
  notifyOnIdle: {
    host: "NOTIFY_ON_IDLE",
    type: "boolean",
    default: true,
    description:
      "Also notify when an agent finishes a turn after real work (a tool use, or 30 s or more), not only when it needs you. Needs notifyWebhookUrl.",
  },
  dashboardPort: {
    host: "DASHBOARD_PORT",
    type: "integer",
    default: 7420,
    description:
      "Port of the web dashboard on the VM (1024-65535). It listens on 127.0.0.1 only; reach it with the dashboardTunnel output (ssh -L) and open the URL `sudo agentctl web --url` prints.",
  },
  dashboardUrl: {
    host: "DASHBOARD_URL",
    type: "string",
    default: "",
    description:
      "Optional. The dashboard's URL as you open it (e.g. http://127.0.0.1:7420 through the tunnel). When set, webhook messages link to the agent there. Never the token (no user, query or fragment).",
  },
} as const satisfies Readonly<Record<string, ConfigKeySpec>>;
