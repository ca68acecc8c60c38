declare module "hosts/lin/sigpipe" {
  /** Ignores SIGPIPE for the rest of the process (sigpipe.c). */
  export default function ignoreSigpipe(): void;
}
