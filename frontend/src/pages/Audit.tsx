import { useQuery } from "@tanstack/react-query";
import { Card, EmptyState, ErrorState, PageHeader, Spinner, Table } from "../components/ui";
import { formatDateTime } from "../lib/format";
import { auditQuery } from "../queries/audit";

export function Audit() {
  const q = useQuery(auditQuery());
  const rows = q.data ?? [];
  return (
    <>
      <PageHeader title="Audit log" subtitle="Every admin action: users, keys, grants and cancels, newest first" />
      <Card bodyClassName="p-0">
        {q.isLoading ? (
          <Spinner label="Loading the audit log" />
        ) : q.isError ? (
          <div className="p-4">
            <ErrorState
              title="Could not load the audit log"
              message={q.error.message}
              onRetry={() => void q.refetch()}
            />
          </div>
        ) : rows.length === 0 ? (
          <EmptyState title="No admin actions yet" />
        ) : (
          <Table
            label="Audit log"
            columns={[
              { label: "When" },
              { label: "Actor" },
              { label: "Action" },
              { label: "Target" },
              { label: "Detail", className: "hidden md:table-cell" },
            ]}
          >
            {rows.map((r, i) => (
              <tr key={`${r.at}-${i}`} data-testid="audit-row" data-action={r.action}>
                <td className="td whitespace-nowrap">{formatDateTime(r.at)}</td>
                <td className="td">{r.actor}</td>
                <td className="td font-medium">{r.action}</td>
                <td className="td font-mono text-xs">{r.target ?? "—"}</td>
                <td className="td hidden max-w-md truncate font-mono text-xs md:table-cell">
                  {r.detail == null ? "—" : typeof r.detail === "string" ? r.detail : JSON.stringify(r.detail)}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Card>
    </>
  );
}
