import { describe, expect, it } from "vitest";
import {
  EXAMPLE_FORM,
  emptyForm,
  formFieldOf,
  parseIntStrict,
  validateSubmit,
  type SubmitForm,
} from "../src/lib/validate";

const form = (patch: Partial<SubmitForm>): SubmitForm => ({ ...EXAMPLE_FORM, ...patch });
function errorsOf(f: SubmitForm, limits = {}) {
  const r = validateSubmit(f, limits);
  return r.ok ? {} : r.errors;
}

describe("validateSubmit", () => {
  it("accepts the original README example and builds its body", () => {
    const r = validateSubmit(EXAMPLE_FORM);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.body).toEqual({
      title: "Data Processing Job",
      description: "Process large dataset",
      code: 'print("Hello World")',
      command: "python script.py",
      required_cores: 2,
      required_ram_mb: 4096,
      priority: 1,
      buyer_id: "default-buyer",
      parameters: { input: "data.csv" },
    });
  });

  it("requires title, command, cores, RAM and buyer", () => {
    const e = errorsOf({ ...emptyForm(), required_cores: "", required_ram_mb: "" });
    expect(Object.keys(e).sort()).toEqual(["buyer_id", "command", "required_cores", "required_ram_mb", "title"]);
  });

  it("checks title and command lengths in characters", () => {
    expect(errorsOf(form({ title: "x".repeat(200) })).title).toBeUndefined();
    expect(errorsOf(form({ title: "x".repeat(201) })).title).toMatch(/at most 200/);
    expect(errorsOf(form({ title: "é".repeat(200) })).title).toBeUndefined();
    expect(errorsOf(form({ command: "a".repeat(4097) })).command).toMatch(/at most 4096/);
    expect(errorsOf(form({ description: "d".repeat(10_001) })).description).toMatch(/10,000/);
  });

  it("limits code to 1 MiB of UTF-8", () => {
    expect(errorsOf(form({ code: "a".repeat(1 << 20) })).code).toBeUndefined();
    expect(errorsOf(form({ code: "é".repeat(1 << 19) + "a" })).code).toMatch(/1 MiB/);
  });

  it("wants whole numbers in range for cores, RAM and priority", () => {
    expect(errorsOf(form({ required_cores: "0" })).required_cores).toMatch(/at least 1/);
    expect(errorsOf(form({ required_cores: "1.5" })).required_cores).toMatch(/whole number/);
    expect(errorsOf(form({ required_cores: "two" })).required_cores).toMatch(/whole number/);
    expect(errorsOf(form({ required_ram_mb: "-1" })).required_ram_mb).toMatch(/at least 1/);
    expect(errorsOf(form({ priority: "11" })).priority).toMatch(/at most 10/);
    expect(errorsOf(form({ priority: "0" })).priority).toMatch(/at least 1/);
    const r = validateSubmit(form({ priority: "" }));
    expect(r.ok && r.body.priority).toBe(5);
  });

  it("applies the coordinator's job size limits when known", () => {
    const limits = { maxCores: 4, maxRamMb: 2048 };
    const e = errorsOf(form({ required_cores: "5", required_ram_mb: "4096" }), limits);
    expect(e.required_cores).toBe("Cores must be at most 4");
    expect(e.required_ram_mb).toBe("RAM (MB) must be at most 2048");
    expect(validateSubmit(form({ required_cores: "4", required_ram_mb: "2048" }), limits).ok).toBe(true);
  });

  it("checks ids", () => {
    expect(errorsOf(form({ buyer_id: "a b" })).buyer_id).toMatch(/letters/);
    expect(errorsOf(form({ buyer_id: "x".repeat(65) })).buyer_id).toMatch(/1-64/);
    expect(errorsOf(form({ buyer_id: "A-z_0.9" })).buyer_id).toBeUndefined();
    expect(errorsOf(form({ image: "../etc" })).image).toBeDefined();
  });

  it("wants parameters to be a JSON object", () => {
    expect(errorsOf(form({ parameters: "[1]" })).parameters).toMatch(/object/);
    expect(errorsOf(form({ parameters: "{" })).parameters).toMatch(/valid JSON/);
    const r = validateSubmit(form({ parameters: "" }));
    expect(r.ok && r.body.parameters).toBeUndefined();
  });

  it("checks the code file path", () => {
    expect(errorsOf(form({ code_file: "/etc/passwd" })).code_file).toMatch(/relative/);
    expect(errorsOf(form({ code_file: "a/../b" })).code_file).toMatch(/'\.\.'/);
    expect(errorsOf(form({ code_file: "./b" })).code_file).toMatch(/'\.'/);
    expect(errorsOf(form({ code_file: "a\\b" })).code_file).toMatch(/backslash/);
    expect(errorsOf(form({ code_file: "é".repeat(128) })).code_file).toMatch(/255 bytes/);
    const r = validateSubmit(form({ code_file: "src/main.py" }));
    expect(r.ok && r.body.code_file).toBe("src/main.py");
  });

  it("passes optional extensions only when given", () => {
    const r = validateSubmit(form({ image: "python", timeout_seconds: "60", max_attempts: "2" }));
    expect(r.ok).toBe(true);
    if (r.ok) expect([r.body.image, r.body.timeout_seconds, r.body.max_attempts]).toEqual(["python", 60, 2]);
    expect(errorsOf(form({ timeout_seconds: "0" })).timeout_seconds).toMatch(/at least 1/);
    expect(errorsOf(form({ timeout_seconds: "604801" })).timeout_seconds).toMatch(/at most 604800/);
    expect(errorsOf(form({ max_attempts: "101" })).max_attempts).toMatch(/at most 100/);
  });
});

describe("helpers", () => {
  it("parseIntStrict takes only whole decimal integers", () => {
    expect(parseIntStrict(" 42 ")).toBe(42);
    expect(parseIntStrict("4e2")).toBeNull();
    expect(parseIntStrict("0x10")).toBeNull();
    expect(parseIntStrict("9007199254740993")).toBeNull();
  });
  it("formFieldOf maps server field names", () => {
    expect(formFieldOf("required_cores")).toBe("required_cores");
    expect(formFieldOf("unknown_field")).toBeNull();
    expect(formFieldOf(null)).toBeNull();
  });
});
