import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { live } from "./lib/live";
import { resetCacheOnCredentialChange } from "./lib/session";
import { timelines } from "./lib/timeline";
import "./index.css";

const queryClient = new QueryClient({
  defaultOptions: {
    queries: { staleTime: 2000, refetchOnWindowFocus: true, retry: 1 },
  },
});
// The query cache owns server state; the live client writes socket events into it.
live.attach(queryClient);
timelines.watch(queryClient);
resetCacheOnCredentialChange(queryClient);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
