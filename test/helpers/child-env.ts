/**
 * The environment for a steerbot process a test starts: this process's own, without any
 * steerbot setting (`STEERBOT_*`, which a developer's shell or CI may carry) but the shared
 * cache of builds and models, so the child is configured only by what the test sets.
 */
export function childEnv(settings: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("STEERBOT_") && k !== "STEERBOT_CACHE_DIR") delete env[k];
  return { ...env, ...settings };
}
