// The #cloud-config text cloud-init reads from a VM's metadata, by cloud-init's own rules
// (cloud-init 22.4): DataSourceGCE.read_md base64-decodes `user-data` when the instance's
// `user-data-encoding` is "base64" (any other value is ignored, with a warning), then
// user_data.convert_string gunzips it when it starts with gzip's magic (util.decomp_gzip).
import { gunzipSync } from "zlib";

export function cloudInitUserData(metadata: Record<string, unknown>): string {
  const value = String(metadata["user-data"] ?? "");
  let bytes: Buffer = Buffer.from(value, "utf8");
  if (metadata["user-data-encoding"] === "base64") bytes = Buffer.from(value, "base64");
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  return bytes.toString("utf8");
}
