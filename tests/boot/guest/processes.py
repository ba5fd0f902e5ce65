# Runs inside the booted container (python3 is there for cloud-init): prints one JSON document
# with every process as the container sees it, so the test can walk tmux pane -> wrapper ->
# claude and read each one's uid, working directory, cgroups and memory (RSS, and PSS: shared pages split among sharers).
import json
import os


def read(path, default=""):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return default


def link(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def status_fields(pid):
    fields = {}
    for line in read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def main():
    processes = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        status = status_fields(name)
        if not status:
            continue
        rss_kib = int(status.get("VmRSS", "0 kB").split()[0])
        pss_kib = 0
        for line in read(f"/proc/{name}/smaps_rollup").splitlines():
            if line.startswith("Pss:"):
                pss_kib = int(line.split()[1])
        processes.append(
            {
                "pid": int(name),
                "ppid": int(status.get("PPid", "0")),
                "uid": int(status.get("Uid", "-1").split()[0]),
                "comm": read(f"/proc/{name}/comm").strip(),
                "exe": link(f"/proc/{name}/exe"),
                "cwd": link(f"/proc/{name}/cwd"),
                "argv": [a for a in read(f"/proc/{name}/cmdline").split("\0") if a],
                "cgroup": read(f"/proc/{name}/cgroup").splitlines(),
                "rssKib": rss_kib,
                "pssKib": pss_kib,
            }
        )
    print(json.dumps(processes))


main()
