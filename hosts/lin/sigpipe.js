// See sigpipe.c.
export default function ignoreSigpipe() @ "xs_lin_ignore_sigpipe";
