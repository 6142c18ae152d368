/** StartupError is a problem that stops the balancer from starting, said in one sentence. */
export class StartupError extends Error {
  override name = 'StartupError';
}
