/**
 * The TLS handshake time with the SDK's own TLS (for the figures `npm run moddable` prints): from the TLS socket's
 * construction, which starts the handshake, to its first onWritable, which the SDK's TLS socket passes up only once
 * the handshake is done. Everything else goes through unchanged, `this` included.
 */
type Options = { onWritable?: (this: unknown, count: number) => void; [option: string]: unknown };
type TlsClass = new (options: Options) => object;

export function timedTls(TLS: TlsClass, now: () => number, report: (ms: number) => void): TlsClass {
  return class TimedTls extends TLS {
    constructor(options: Options) {
      const started = now();
      let done = false;
      super({
        ...options,
        onWritable(this: unknown, count: number) {
          if (!done) {
            done = true;
            report(now() - started);
          }
          options.onWritable?.call(this, count);
        },
      });
    }
  };
}
