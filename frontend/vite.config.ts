/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";

// The coordinator serves the built files itself; in development Vite serves them on 5173 and
// forwards the API, the metrics and the dashboard WebSocket to a coordinator on 8000.
const coordinator = process.env.COORDINATOR_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react(), tailwindcss()],
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": { target: coordinator, changeOrigin: false },
      "/metrics": { target: coordinator, changeOrigin: false },
      "/ws": { target: coordinator, ws: true, changeOrigin: false },
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 800,
  },
  test: {
    environment: "node",
    include: ["tests/**/*.test.ts"],
  },
});
