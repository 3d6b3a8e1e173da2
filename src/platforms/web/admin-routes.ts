/**
 * The studio's admin route groups (Steers, Training, Adapters, Status), for the server's one list of
 * route groups (web-server.ts ROUTE_GROUPS). Every route in them is admin-only on the server
 * (`deps.auth.requireAdmin`) and every state change carries the CSRF token (the server's hook).
 */
import type { FastifyInstance } from "fastify";
import { registerAdminAdaptersRoutes } from "./admin-adapters.ts";
import { registerAdminStatusRoutes } from "./admin-status.ts";
import { registerAdminSteersRoutes } from "./admin-steers.ts";
import { registerAdminTrainingRoutes } from "./admin-training.ts";
import type { WebDeps } from "./web-server.ts";

export const ADMIN_ROUTE_GROUPS: ((app: FastifyInstance, deps: WebDeps) => void)[] = [registerAdminSteersRoutes, registerAdminTrainingRoutes, registerAdminAdaptersRoutes, registerAdminStatusRoutes];
