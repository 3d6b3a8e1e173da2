#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (no build step: the source is what runs).
import { register } from "tsx/esm/api";
register();
await import("../src/cli/main.ts");
