// The page with its script inlined, made by scripts/build-host.ts at bundle time (host/web/page.ts).
declare module "agent-host:page" {
  const html: string;
  export default html;
}
