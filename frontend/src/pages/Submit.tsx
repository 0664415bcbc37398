import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useMemo, useState, type FormEvent, type ReactNode } from "react";
import { Link, useNavigate } from "react-router";
import { Card, PageHeader } from "../components/ui";
import { ApiError, submitJob } from "../lib/api";
import { FileDrop, type JobFiles } from "../components/FileDrop";
import { formatCredits, formatMicro, jobCostMicro, toMicro } from "../lib/credits";
import { useSession } from "../lib/session";
import type { Pricing } from "../lib/types";
import { creditsQuery } from "../queries/credits";
import { pricingQuery } from "../queries/health";
import { estimate, parsePrice, priceRange, pricingMode } from "../lib/pricing";
import { workersQuery } from "../queries/workers";
import { storeJob } from "../queries/jobs";
import {
  EXAMPLE_FORM,
  emptyForm,
  formFieldOf,
  ID_RE,
  parseIntStrict,
  validateSubmit,
  type SubmitField,
  type SubmitForm,
} from "../lib/validate";

type Errors = Partial<Record<SubmitField, string>>;

function FormField({
  field,
  label,
  hint,
  error,
  children,
  className = "",
}: {
  field: SubmitField;
  label: string;
  hint?: ReactNode;
  error?: string;
  children: (props: { id: string; "aria-invalid": boolean; "aria-describedby"?: string; name: string }) => ReactNode;
  className?: string;
}) {
  const id = useId();
  const errId = `${id}-error`;
  const hintId = `${id}-hint`;
  const describedBy = [error ? errId : null, hint ? hintId : null].filter(Boolean).join(" ") || undefined;
  return (
    <div className={className}>
      <label htmlFor={id} className="label">
        {label}
      </label>
      {children({ id, "aria-invalid": !!error, "aria-describedby": describedBy, name: field })}
      {error ? (
        <p id={errId} className="mt-1 text-xs font-medium text-rose-600" data-testid={`error-${field}`}>
          {error}
        </p>
      ) : (
        hint && (
          <p id={hintId} className="mt-1 text-xs text-slate-500">
            {hint}
          </p>
        )
      )}
    </div>
  );
}

/** Metered and market: the hold, the charge per started second, the market's price range. */
function UsageCostPreview({ form, pricing }: { form: SubmitForm; pricing: Pricing | null }) {
  const workers = useQuery(workersQuery()).data ?? [];
  const mode = pricingMode(pricing);
  const cores = parseIntStrict(form.required_cores);
  const ram = parseIntStrict(form.required_ram_mb);
  const timeoutText = form.timeout_seconds.trim();
  const timeout = timeoutText === "" ? 3600 : parseIntStrict(timeoutText);
  const valid = cores !== null && ram !== null && timeout !== null && cores >= 1 && ram >= 1 && timeout >= 1;
  const maxCore = parsePrice(form.max_price_per_core_second);
  const maxGb = parsePrice(form.max_price_per_gb_second);
  const max = maxCore !== null && maxGb !== null ? { core: toMicro(maxCore) ?? 0n, gb: toMicro(maxGb) ?? 0n } : null;
  const range = valid && mode === "market" ? priceRange(workers, cores, ram) : null;
  const est = valid ? estimate(pricing, cores, ram, timeout, max, range) : null;
  const show = (v: bigint | null | undefined) => (v === null || v === undefined ? "—" : `${formatMicro(v)} credits`);
  return (
    <div className="space-y-3" data-testid="cost-preview-usage" data-mode={mode}>
      <div>
        <div className="text-xs font-medium uppercase tracking-wide text-slate-500">Held at submit</div>
        <div
          className="mt-1 text-2xl font-semibold tabular-nums text-slate-900"
          data-testid="cost-hold"
          aria-live="polite"
        >
          {show(est?.hold)}
        </div>
        <p className="mt-1 text-xs text-slate-500">
          {mode === "market"
            ? "Your maximum prices for the whole timeout."
            : `${formatCredits(pricing?.price_per_core_second)} per core-second + ${formatCredits(pricing?.price_per_gb_second)} per GB-second, for the whole timeout.`}
        </p>
      </div>
      <div>
        <div className="text-xs font-medium uppercase tracking-wide text-slate-500">Expected charge</div>
        <div className="mt-1 text-sm tabular-nums text-slate-900" data-testid="cost-expected">
          {est?.perSecond != null
            ? `${formatMicro(est.perSecond)} credits per started second, at most ${show(est.expectedMax)}`
            : mode === "market"
              ? "No connected worker that fits is within your maximum."
              : "—"}
        </div>
        <p className="mt-1 text-xs text-slate-500">Only the seconds used are charged; the rest is refunded.</p>
      </div>
      {mode === "market" && (
        <div data-testid="price-range">
          <div className="text-xs font-medium uppercase tracking-wide text-slate-500">Prices available</div>
          <div className="mt-1 text-sm tabular-nums text-slate-900">
            {range && range.count > 0
              ? `${range.count} fitting worker${range.count === 1 ? "" : "s"}: ${formatMicro(range.minPerSecond!)} to ${formatMicro(range.maxPerSecond!)} credits per second`
              : "No online worker fits these resources."}
          </div>
        </div>
      )}
    </div>
  );
}

function CostPreview({ form, pricing }: { form: SubmitForm; pricing: Pricing | null }) {
  if (pricingMode(pricing) !== "flat") return <UsageCostPreview form={form} pricing={pricing} />;
  const cores = parseIntStrict(form.required_cores);
  const ram = parseIntStrict(form.required_ram_mb);
  const pc = pricing ? toMicro(pricing.cost_per_core) : null;
  const pr = pricing ? toMicro(pricing.cost_per_100mb_ram) : null;
  if (pc === null || pr === null) {
    return (
      <p className="text-sm text-slate-500" data-testid="cost-preview">
        Cost computed on submit.
      </p>
    );
  }
  const valid = cores !== null && ram !== null && cores >= 1 && ram >= 1;
  const cost = valid ? jobCostMicro(BigInt(cores), BigInt(ram), pc, pr) : null;
  return (
    <div>
      <div className="text-xs font-medium uppercase tracking-wide text-slate-500">Estimated cost</div>
      <div
        className="mt-1 text-2xl font-semibold tabular-nums text-slate-900"
        data-testid="cost-preview"
        aria-live="polite"
      >
        {cost === null ? "—" : `${formatMicro(cost)} credits`}
      </div>
      <p className="mt-1 text-xs text-slate-500">
        {formatMicro(pc)} per core + {formatMicro(pr)} per 100 MB of RAM. Held when you submit, paid to the seller when
        the job has run.
      </p>
    </div>
  );
}

function BuyerBalance({ buyer }: { buyer: string }) {
  const ok = ID_RE.test(buyer);
  const q = useQuery({ ...creditsQuery(buyer), enabled: ok });
  if (!ok) return null;
  if (q.isError && (q.error as ApiError).status === 404)
    return <span>New buyer: starts with the coordinator's default credits.</span>;
  const bal = q.data;
  if (!bal) return null;
  return (
    <span>
      Balance {formatCredits(bal.credits)} credits{bal.held !== undefined && `, ${formatCredits(bal.held)} held`}.
    </span>
  );
}

export function Submit() {
  const session = useSession();
  const qc = useQueryClient();
  const navigate = useNavigate();
  // A buyer's key pays for its own jobs; only an admin names the buyer.
  const selfBuyer = !session.roles.includes("admin");
  const [form, setForm] = useState<SubmitForm>(() => ({ ...EXAMPLE_FORM }));
  const [errors, setErrors] = useState<Errors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [files, setFiles] = useState<JobFiles>({});
  const pricing = useQuery(pricingQuery()).data ?? null;
  const limits = useMemo(
    () => ({
      maxCores: pricing?.max_job_cores,
      maxRamMb: pricing?.max_job_ram_mb,
      selfBuyer,
      market: pricingMode(pricing) === "market",
    }),
    [pricing, selfBuyer],
  );

  const mutation = useMutation({
    mutationFn: submitJob,
    onSuccess: (job) => {
      storeJob(qc, job);
      void navigate(`/jobs/${encodeURIComponent(job.job_id)}`, { state: { submitted: true } });
    },
    onError: (e: Error) => {
      const err = e as ApiError;
      const field = formFieldOf(err.field);
      if (field) {
        setErrors({ [field]: err.message });
        setFormError("The coordinator rejected a field: see the message at the field.");
      } else if (err.status === 401) {
        setFormError("Your credential was rejected. Sign in again (top right) and submit again.");
      } else if (err.status === 403) {
        setFormError(`Not allowed: ${err.message}`);
      } else if (err.status === 429) {
        setFormError(`Slow down: ${err.message}`);
      } else if (err.status === 402) {
        setFormError(`Insufficient credits: ${err.message}`);
      } else {
        setFormError(err.message || "Submitting failed");
      }
    },
  });

  const update = (field: SubmitField) => (e: { target: { value: string } }) => {
    const value = e.target.value;
    setForm((f) => ({ ...f, [field]: value }));
    if (errors[field]) setErrors((errs) => ({ ...errs, [field]: undefined }));
  };

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const r = validateSubmit(form, limits);
    if (!r.ok) {
      setErrors(r.errors);
      setFormError("Please fix the highlighted fields.");
      return;
    }
    setErrors({});
    mutation.mutate(Object.keys(files).length > 0 ? { ...r.body, files } : r.body);
  };

  const input = (field: SubmitField, props: Record<string, unknown> = {}) =>
    function InputRender(p: { id: string; "aria-invalid": boolean; "aria-describedby"?: string; name: string }) {
      const { className: extra = "", ...rest } = props as { className?: string };
      return (
        <input
          {...p}
          {...rest}
          className={`input ${extra} ${errors[field] ? "input-error" : ""}`}
          value={form[field]}
          onChange={update(field)}
        />
      );
    };

  return (
    <>
      <PageHeader
        title="Submit a job"
        subtitle={
          selfBuyer
            ? `Describe the job and the resources it needs; ${session.userId ?? "your user"} pays for it.`
            : "Describe the job, the resources it needs and who pays for it."
        }
        actions={
          <>
            <button
              type="button"
              className="btn-secondary"
              onClick={() => {
                setForm({ ...EXAMPLE_FORM });
                setErrors({});
              }}
            >
              Fill example
            </button>
            <button
              type="button"
              className="btn-secondary"
              onClick={() => {
                setForm(emptyForm());
                setErrors({});
              }}
            >
              Clear form
            </button>
          </>
        }
      />
      <form noValidate onSubmit={onSubmit} aria-label="Submit job" className="grid gap-6 lg:grid-cols-3">
        <div className="space-y-6 lg:col-span-2">
          <Card title="Job" labelledBy="job-title">
            <div className="grid gap-4 sm:grid-cols-2">
              <FormField field="title" label="Title" error={errors.title} className="sm:col-span-2">
                {input("title", { maxLength: 200, required: true })}
              </FormField>
              <FormField field="description" label="Description" error={errors.description} className="sm:col-span-2">
                {(p) => (
                  <textarea
                    {...p}
                    rows={2}
                    className={`input ${errors.description ? "input-error" : ""}`}
                    value={form.description}
                    onChange={update("description")}
                  />
                )}
              </FormField>
              <FormField
                field="command"
                label="Command"
                error={errors.command}
                hint="Split into words like a shell does, run without a shell. Use sh -c '…' for shell features."
                className="sm:col-span-2"
              >
                {input("command", { className: "font-mono", spellCheck: false, required: true })}
              </FormField>
              <FormField
                field="code"
                label="Code"
                error={errors.code}
                hint="Written to the file the command names (or to Code file)."
                className="sm:col-span-2"
              >
                {(p) => (
                  <textarea
                    {...p}
                    rows={6}
                    spellCheck={false}
                    className={`input font-mono text-xs ${errors.code ? "input-error" : ""}`}
                    value={form.code}
                    onChange={update("code")}
                  />
                )}
              </FormField>
              <div className="sm:col-span-2">
                <FileDrop onChange={setFiles} />
              </div>
              <FormField field="code_file" label="Code file" error={errors.code_file} hint="Optional, e.g. script.py">
                {input("code_file", { placeholder: "from the command", spellCheck: false })}
              </FormField>
              <FormField field="image" label="Image" error={errors.image} hint="Optional job image">
                {input("image", { placeholder: "default", spellCheck: false })}
              </FormField>
              <FormField
                field="parameters"
                label="Parameters (JSON object)"
                error={errors.parameters}
                className="sm:col-span-2"
              >
                {(p) => (
                  <textarea
                    {...p}
                    rows={2}
                    spellCheck={false}
                    className={`input font-mono text-xs ${errors.parameters ? "input-error" : ""}`}
                    value={form.parameters}
                    onChange={update("parameters")}
                    placeholder='{"input": "data.csv"}'
                  />
                )}
              </FormField>
            </div>
          </Card>
          <Card title="Resources and scheduling" labelledBy="res-title">
            <div className="grid gap-4 sm:grid-cols-3">
              <FormField
                field="required_cores"
                label="Cores"
                error={errors.required_cores}
                hint={limits.maxCores ? `1 to ${limits.maxCores}` : "At least 1"}
              >
                {input("required_cores", { inputMode: "numeric", required: true })}
              </FormField>
              <FormField
                field="required_ram_mb"
                label="RAM (MB)"
                error={errors.required_ram_mb}
                hint={limits.maxRamMb ? `1 to ${limits.maxRamMb}` : "At least 1"}
              >
                {input("required_ram_mb", { inputMode: "numeric", required: true })}
              </FormField>
              <FormField field="priority" label="Priority" error={errors.priority} hint="1 to 10, 10 most urgent">
                {input("priority", { inputMode: "numeric" })}
              </FormField>
              <FormField
                field="timeout_seconds"
                label="Timeout (seconds)"
                error={errors.timeout_seconds}
                hint="Default 3600"
              >
                {input("timeout_seconds", { inputMode: "numeric", placeholder: "3600" })}
              </FormField>
              <FormField field="max_attempts" label="Max attempts" error={errors.max_attempts} hint="Default 3">
                {input("max_attempts", { inputMode: "numeric", placeholder: "3" })}
              </FormField>
              <FormField
                field="min_reputation"
                label="Minimum reputation"
                error={errors.min_reputation}
                hint="0 to 1; sellers below it are not used"
              >
                {input("min_reputation", { inputMode: "decimal", placeholder: "0" })}
              </FormField>
              {limits.market && (
                <>
                  <FormField
                    field="max_price_per_core_second"
                    label="Max price per core-second"
                    error={errors.max_price_per_core_second}
                    hint="Credits; the cheapest seller within it runs the job"
                  >
                    {input("max_price_per_core_second", { inputMode: "decimal", className: "font-mono" })}
                  </FormField>
                  <FormField
                    field="max_price_per_gb_second"
                    label="Max price per GB-second"
                    error={errors.max_price_per_gb_second}
                    hint="Credits per GB of RAM and second"
                  >
                    {input("max_price_per_gb_second", { inputMode: "decimal", className: "font-mono" })}
                  </FormField>
                </>
              )}
            </div>
          </Card>
        </div>
        <div className="space-y-6">
          <Card title="Buyer" labelledBy="buyer-title">
            {selfBuyer ? (
              <p className="text-sm text-slate-700" data-testid="self-buyer">
                <span className="font-medium">{session.userId}</span> (you).{" "}
                <span className="text-slate-500">{session.userId && <BuyerBalance buyer={session.userId} />}</span>
              </p>
            ) : (
              <FormField
                field="buyer_id"
                label="Buyer id"
                error={errors.buyer_id}
                hint={<BuyerBalance buyer={form.buyer_id.trim()} />}
              >
                {input("buyer_id", { spellCheck: false, required: true, autoComplete: "off" })}
              </FormField>
            )}
          </Card>
          <Card title="Cost" labelledBy="cost-title">
            <CostPreview form={form} pricing={pricing} />
          </Card>
          {formError && (
            <div
              role="alert"
              className="rounded-xl border border-rose-200 bg-rose-50 px-5 py-3 text-sm text-rose-800"
              data-testid="form-error"
            >
              {formError}
            </div>
          )}
          <div className="flex flex-col gap-2">
            <button type="submit" className="btn-primary w-full py-2.5" disabled={mutation.isPending}>
              {mutation.isPending ? "Submitting…" : "Submit job"}
            </button>
            <Link to="/jobs" className="text-center text-sm text-slate-500 hover:text-slate-700">
              Back to jobs
            </Link>
          </div>
        </div>
      </form>
    </>
  );
}
