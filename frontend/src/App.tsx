import { useEffect, type ReactNode } from "react";
import { createBrowserRouter, RouterProvider, useLocation } from "react-router";
import { Layout } from "./components/Layout";
import { Card, EmptyState, ErrorState, Spinner } from "./components/ui";
import { ApiError } from "./lib/api";
import { live } from "./lib/live";
import { canOpen } from "./lib/roles";
import { useSession } from "./lib/session";
import { Audit } from "./pages/Audit";
import { Credits } from "./pages/Credits";
import { JobDetail } from "./pages/JobDetail";
import { Jobs } from "./pages/Jobs";
import { Keys } from "./pages/Keys";
import { NotFound } from "./pages/NotFound";
import { Overview } from "./pages/Overview";
import { Selling } from "./pages/Selling";
import { Submit } from "./pages/Submit";
import { Users } from "./pages/Users";
import { Workers } from "./pages/Workers";

const TITLES: Record<string, string> = {
  "/": "Overview",
  "/jobs": "Jobs",
  "/submit": "Submit",
  "/workers": "Workers",
  "/selling": "Selling",
  "/credits": "Credits",
  "/keys": "API keys",
  "/users": "Users",
  "/audit": "Audit log",
};

/** A page the session's roles do not include says so instead of failing request by request. */
function Guard({ children }: { children: ReactNode }) {
  const s = useSession();
  const { pathname } = useLocation();
  if (s.loading) return <Spinner label="Signing in" />;
  if (canOpen(pathname, s.roles)) return children;
  // Not a refusal of the page: the coordinator could not say who this is (the banner covers 401).
  if (s.error && !(s.error instanceof ApiError && s.error.status === 401))
    return <ErrorState title="Could not check your credential" message={s.error.message} />;
  return (
    <Card>
      <div data-testid="not-allowed">
        <EmptyState title={s.credential ? "Your key does not give access to this page" : "Sign in to use this page"}>
          {s.credential
            ? "Ask an administrator for a key with the right scope."
            : "Use Sign in (top right) with an API key, or the admin token."}
        </EmptyState>
      </div>
    </Card>
  );
}

const guarded = (el: ReactNode) => <Guard>{el}</Guard>;

const router = createBrowserRouter([
  {
    path: "/",
    element: <Layout />,
    children: [
      { index: true, element: <Overview /> },
      { path: "jobs", element: <Jobs /> },
      { path: "jobs/:id", element: <JobDetail /> },
      { path: "submit", element: guarded(<Submit />) },
      { path: "workers", element: <Workers /> },
      { path: "selling", element: guarded(<Selling />) },
      { path: "credits", element: guarded(<Credits />) },
      { path: "keys", element: guarded(<Keys />) },
      { path: "users", element: guarded(<Users />) },
      { path: "audit", element: guarded(<Audit />) },
      { path: "*", element: <NotFound /> },
    ],
  },
]);

function setTitle(p: string): void {
  const t = TITLES[p] ?? (p.startsWith("/jobs/") ? "Job" : "CacheOut");
  document.title = t === "CacheOut" ? t : `${t} · CacheOut`;
}
setTitle(window.location.pathname);
router.subscribe((state) => setTitle(state.location.pathname));

export function App() {
  useEffect(() => {
    live.start();
    return () => live.stop();
  }, []);
  return <RouterProvider router={router} />;
}
