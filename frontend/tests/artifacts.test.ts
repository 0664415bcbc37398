import { describe, expect, it } from "vitest";
import { artifactUrl } from "../src/queries/artifacts";
import { addFiles, MAX_FILES } from "../src/components/FileDrop";

describe("artifactUrl", () => {
  it("encodes each path segment but keeps the folders", () => {
    expect(artifactUrl("j-1", "sub dir/a#b.txt")).toBe("/api/v1/jobs/j-1/artifacts/sub%20dir/a%23b.txt");
  });
  it("names the tar.gz for the whole set", () => {
    expect(artifactUrl("j-1", null)).toBe("/api/v1/jobs/j-1/artifacts.tar.gz");
  });
});

describe("addFiles limits", () => {
  it("refuses one file more than the count limit and keeps the current list", async () => {
    const current = Array.from({ length: MAX_FILES }, (_, i) => ({ name: `f${i}`, size: 1, base64: "eA==" }));
    const r = await addFiles(current, []);
    expect(r.error).toBeNull();
    const over = [...current, { name: "x", size: 1, base64: "eA==" }];
    const r2 = await addFiles(over, []);
    expect(r2.error).toMatch(/At most 100 files/);
    expect(r2.files).toBe(over);
  });
});
