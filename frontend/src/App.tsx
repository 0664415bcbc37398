import { useEffect } from "react";
import { createBrowserRouter, RouterProvider } from "react-router";
import { Layout } from "./components/Layout";
import { live } from "./lib/live";
import { Credits } from "./pages/Credits";
import { JobDetail } from "./pages/JobDetail";
import { Jobs } from "./pages/Jobs";
import { NotFound } from "./pages/NotFound";
import { Overview } from "./pages/Overview";
import { Submit } from "./pages/Submit";
import { Workers } from "./pages/Workers";

const TITLES: Record<string, string> = {
  "/": "Overview",
  "/jobs": "Jobs",
  "/submit": "Submit",
  "/workers": "Workers",
  "/credits": "Credits",
};

const router = createBrowserRouter([
  {
    path: "/",
    element: <Layout />,
    children: [
      { index: true, element: <Overview /> },
      { path: "jobs", element: <Jobs /> },
      { path: "jobs/:id", element: <JobDetail /> },
      { path: "submit", element: <Submit /> },
      { path: "workers", element: <Workers /> },
      { path: "credits", element: <Credits /> },
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
