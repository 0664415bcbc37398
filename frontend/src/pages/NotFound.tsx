import { Link } from "react-router";
import { Card, EmptyState, PageHeader } from "../components/ui";

export function NotFound() {
  return (
    <>
      <PageHeader title="Page not found" />
      <Card>
        <EmptyState title="There is nothing at this address">
          <Link to="/" className="font-medium text-indigo-600 hover:text-indigo-500">
            Go to the overview
          </Link>
        </EmptyState>
      </Card>
    </>
  );
}
