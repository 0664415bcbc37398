// Client-side validation of the submit form, following API.md's rules for POST /api/v1/submit.
// The server validates again; its 422 answers name the field and are shown at that field too.
import { parsePrice, parseReputation } from "./pricing";

export interface SubmitForm {
  title: string;
  description: string;
  code: string;
  code_file: string;
  command: string;
  required_cores: string;
  required_ram_mb: string;
  priority: string;
  buyer_id: string;
  parameters: string;
  image: string;
  timeout_seconds: string;
  max_attempts: string;
  /** 0-1; empty: any reputation. */
  min_reputation: string;
  /** Credits per core-second / GB-second the buyer pays at most (PRICING=market). */
  max_price_per_core_second: string;
  max_price_per_gb_second: string;
}

export type SubmitField = keyof SubmitForm;

export interface SubmitBody {
  title: string;
  description?: string;
  code?: string;
  code_file?: string;
  command: string;
  required_cores: number;
  required_ram_mb: number;
  priority: number;
  /** Absent when a buyer's key submits for its own user. */
  buyer_id?: string;
  parameters?: Record<string, unknown>;
  image?: string;
  timeout_seconds?: number;
  max_attempts?: number;
  min_reputation?: number;
  max_price_per_core_second?: number;
  max_price_per_gb_second?: number;
}

export interface Limits {
  maxCores?: number | null;
  maxRamMb?: number | null;
  /** The submitter's key pays (a buyer's own submit): the form has no buyer id to check or send. */
  selfBuyer?: boolean;
  /** PRICING=market: the maximum prices are required. */
  market?: boolean;
}

export type ValidationResult =
  { ok: true; body: SubmitBody } | { ok: false; errors: Partial<Record<SubmitField, string>> };

export const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
export const MAX_CODE_BYTES = 1 << 20;
export const MAX_TIMEOUT_SECONDS = 604_800; // one week
export const MAX_ATTEMPTS = 100;

/** The original README's example job, used as the form's defaults. */
export const EXAMPLE_FORM: SubmitForm = {
  title: "Data Processing Job",
  description: "Process large dataset",
  code: 'print("Hello World")',
  code_file: "",
  command: "python script.py",
  required_cores: "2",
  required_ram_mb: "4096",
  priority: "1",
  buyer_id: "default-buyer",
  parameters: '{"input": "data.csv"}',
  image: "",
  timeout_seconds: "",
  max_attempts: "",
  min_reputation: "",
  max_price_per_core_second: "",
  max_price_per_gb_second: "",
};

export function emptyForm(): SubmitForm {
  return {
    title: "",
    description: "",
    code: "",
    code_file: "",
    command: "",
    required_cores: "1",
    required_ram_mb: "256",
    priority: "5",
    buyer_id: "",
    parameters: "",
    image: "",
    timeout_seconds: "",
    max_attempts: "",
    min_reputation: "",
    max_price_per_core_second: "",
    max_price_per_gb_second: "",
  };
}

/** Length in Unicode code points (what a person counts as characters). */
function chars(s: string): number {
  return Array.from(s).length;
}

/** Parses a whole decimal integer; null when the text is not one or is out of the safe range. */
export function parseIntStrict(text: string): number | null {
  const t = text.trim();
  if (!/^[+-]?\d+$/.test(t)) return null;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : null;
}

type Errors = Partial<Record<SubmitField, string>>;

function intField(
  errors: Errors,
  field: SubmitField,
  text: string,
  label: string,
  min: number,
  max: number | null,
): number | undefined {
  const n = parseIntStrict(text);
  if (n === null) {
    errors[field] = `${label} must be a whole number`;
    return undefined;
  }
  if (n < min) {
    errors[field] = `${label} must be at least ${min}`;
    return undefined;
  }
  if (max !== null && n > max) {
    errors[field] = `${label} must be at most ${max}`;
    return undefined;
  }
  return n;
}

/** Checks every field; returns the request body or one message per invalid field. */
export function validateSubmit(form: SubmitForm, limits: Limits = {}): ValidationResult {
  const errors: Errors = {};
  const title = form.title.trim();
  if (title === "") errors.title = "Title is required";
  else if (chars(title) > 200) errors.title = "Title must be at most 200 characters";

  if (chars(form.description) > 10_000) errors.description = "Description must be at most 10,000 characters";

  if (new TextEncoder().encode(form.code).length > MAX_CODE_BYTES) errors.code = "Code must be at most 1 MiB";

  const command = form.command.trim();
  if (command === "") errors.command = "Command is required";
  else if (chars(command) > 4096) errors.command = "Command must be at most 4096 characters";

  const codeFile = form.code_file.trim();
  if (codeFile !== "") {
    if (codeFile.startsWith("/")) errors.code_file = "Code file must be a relative path";
    else if (codeFile.split("/").some((p) => p === ".." || p === "." || p === ""))
      errors.code_file = "Code file must not contain empty, '.' or '..' parts";
    // eslint-disable-next-line no-control-regex -- control characters are what it looks for
    else if (/[\x00-\x1f\x7f\\]/.test(codeFile))
      errors.code_file = "Code file must not contain control characters or backslashes";
    else if (new TextEncoder().encode(codeFile).length > 255) errors.code_file = "Code file must be at most 255 bytes";
  }

  const cores = intField(errors, "required_cores", form.required_cores, "Cores", 1, limits.maxCores ?? null);
  const ram = intField(errors, "required_ram_mb", form.required_ram_mb, "RAM (MB)", 1, limits.maxRamMb ?? null);
  const priority = form.priority.trim() === "" ? 5 : intField(errors, "priority", form.priority, "Priority", 1, 10);

  const buyer = form.buyer_id.trim();
  if (limits.selfBuyer) {
    /* the key's user */
  } else if (buyer === "") errors.buyer_id = "Buyer id is required";
  else if (!ID_RE.test(buyer)) errors.buyer_id = "Buyer id must be 1-64 letters, digits, '.', '_' or '-'";

  let parameters: Record<string, unknown> | undefined;
  if (form.parameters.trim() !== "") {
    try {
      const v: unknown = JSON.parse(form.parameters);
      if (v === null || typeof v !== "object" || Array.isArray(v))
        errors.parameters = "Parameters must be a JSON object";
      else parameters = v as Record<string, unknown>;
    } catch {
      errors.parameters = "Parameters must be valid JSON";
    }
  }

  const image = form.image.trim();
  if (image !== "" && !ID_RE.test(image)) errors.image = "Image must be 1-64 letters, digits, '.', '_' or '-'";

  const timeout =
    form.timeout_seconds.trim() === ""
      ? undefined
      : intField(errors, "timeout_seconds", form.timeout_seconds, "Timeout", 1, MAX_TIMEOUT_SECONDS);
  const attempts =
    form.max_attempts.trim() === ""
      ? undefined
      : intField(errors, "max_attempts", form.max_attempts, "Max attempts", 1, MAX_ATTEMPTS);

  const minRep = form.min_reputation.trim();
  const reputation = minRep === "" ? undefined : parseReputation(minRep);
  if (reputation === null) errors.min_reputation = "Minimum reputation must be between 0 and 1 (at most 6 decimals)";
  const maxPrices: Partial<Record<"max_price_per_core_second" | "max_price_per_gb_second", number>> = {};
  for (const f of ["max_price_per_core_second", "max_price_per_gb_second"] as const) {
    const t = form[f].trim();
    if (t === "") {
      if (limits.market) errors[f] = "Required: the market needs the most you pay";
      continue;
    }
    const v = parsePrice(t);
    if (v === null) errors[f] = "A price in credits, at least 0, with at most 6 decimals";
    else maxPrices[f] = v;
  }

  if (Object.keys(errors).length > 0) return { ok: false, errors };

  const body: SubmitBody = {
    title,
    command,
    required_cores: cores!,
    required_ram_mb: ram!,
    priority: priority!,
  };
  if (!limits.selfBuyer) body.buyer_id = buyer;
  if (form.description !== "") body.description = form.description;
  if (form.code !== "") body.code = form.code;
  if (codeFile !== "") body.code_file = codeFile;
  if (parameters) body.parameters = parameters;
  if (image !== "") body.image = image;
  if (timeout !== undefined) body.timeout_seconds = timeout;
  if (attempts !== undefined) body.max_attempts = attempts;
  if (reputation !== undefined && reputation !== null) body.min_reputation = reputation;
  Object.assign(body, maxPrices);
  return { ok: true, body };
}

/** Maps a field name from a server error to a form field, when the form has it. */
export function formFieldOf(field: string | undefined | null): SubmitField | null {
  if (!field) return null;
  const known: SubmitField[] = [
    "title",
    "description",
    "code",
    "code_file",
    "command",
    "required_cores",
    "required_ram_mb",
    "priority",
    "buyer_id",
    "parameters",
    "image",
    "timeout_seconds",
    "max_attempts",
    "min_reputation",
    "max_price_per_core_second",
    "max_price_per_gb_second",
  ];
  return (known as string[]).includes(field) ? (field as SubmitField) : null;
}
