/**
 * CliError is a failure the CLI reports as one sentence with a documented exit code:
 * 1 for bad usage or config, 2 when the balancer is unreachable or refuses.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
