/**
 * The operator console's view of terminal certificates: when each terminal's certificate expires (flagged within 30
 * days), the terminal's certificates and revocations on its fleet page, and the revoke button. A revocation from the
 * console is written with its audit row (terminals/store.ts), names the operator, and reaches every front-end process
 * within a revocation poll.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { FrontendError } from "../errors";
import { esc, table, time } from "../operator/html";
import type { Store } from "../storage/store";
import type { CertificateSeen, Revocation } from "./store";

/** Certificates that expire within this long are flagged. */
export const EXPIRY_WARNING_MS = 30 * 24 * 3600_000;

function isRevoked(c: CertificateSeen, revocations: Revocation[]): boolean {
  return revocations.some((r) => r.serial === null || r.serial === c.serial);
}

/** The fleet table's cell: the expiry of each certificate a terminal used (two while it renews). */
export function expiryCell(certs: CertificateSeen[], revocations: Revocation[], now: number): { html: string; alert?: string } {
  if (!certs.length) return { html: revocations.some((r) => r.serial === null) ? '<span class="bad">revoked</span>' : "" };
  let alert: string | undefined;
  const parts = certs.map((c) => {
    const days = Math.floor((c.notAfter - now) / 86_400_000);
    if (isRevoked(c, revocations)) return `<span class="muted">${esc(new Date(c.notAfter).toISOString().slice(0, 10))} revoked</span>`;
    if (c.notAfter <= now) {
      alert ??= "certificate expired";
      return `<span class="bad">${esc(new Date(c.notAfter).toISOString().slice(0, 10))} expired</span>`;
    }
    const soon = c.notAfter - now <= EXPIRY_WARNING_MS;
    // Flagged only when no other valid certificate of the terminal outlives the warning (a renewal in progress).
    if (soon && !certs.some((o) => o !== c && !isRevoked(o, revocations) && o.notAfter - now > EXPIRY_WARNING_MS)) alert ??= `certificate expires in ${days} days`;
    return `<span class="${soon ? "warn" : ""}">${esc(new Date(c.notAfter).toISOString().slice(0, 10))} (${esc(days)} d)</span>`;
  });
  return { html: parts.join("<br>"), ...(alert ? { alert } : {}) };
}

/** Every terminal's certificates and revocations, by terminal (the fleet page reads them once). */
export async function certificatesByTerminal(store: Store): Promise<{ certs: Map<string, CertificateSeen[]>; revocations: Map<string, Revocation[]> }> {
  const certs = new Map<string, CertificateSeen[]>();
  for (const c of await store.terminals.certificates()) certs.set(c.terminalId, [...certs.get(c.terminalId) ?? [], c]);
  const revocations = new Map<string, Revocation[]>();
  for (const r of await store.terminals.revocationsSince(0)) revocations.set(r.terminalId, [...revocations.get(r.terminalId) ?? [], r]);
  return { certs, revocations };
}

/** The terminal page's section: its certificates, its revocations and the revoke form. */
export async function certificatesSection(store: Store, terminalId: string, now: number): Promise<string> {
  const certs = await store.terminals.certificates(terminalId);
  const revocations = await store.terminals.revocationsOf(terminalId);
  const whole = revocations.some((r) => r.serial === null);
  const rows = certs.map((c) => [
    `<span class="mono">${esc(c.serial)}</span>`, expiryCell([c], revocations, now).html, esc(time(c.firstSeen)), esc(time(c.lastSeen)),
    isRevoked(c, revocations) ? '<span class="bad">revoked</span>' : '<span class="ok">valid</span>',
  ]);
  const form = whole ? '<p class="bad">This terminal is revoked: every certificate of it is refused.</p>'
    : `<form class="inline" method="post" action="/fleet/${esc(terminalId)}/revoke" id="revoke-form">
<label>Certificate <select name="serial"><option value="">every certificate of this terminal</option>${certs.filter((c) => !isRevoked(c, revocations)).map((c) => `<option value="${esc(c.serial)}">${esc(c.serial)}</option>`).join("")}</select></label>
<label>Reason <input name="reason" maxlength="200" required placeholder="e.g. machine stolen"></label><button class="primary">Revoke</button></form>`;
  return `<h2>Certificates</h2>${table(["Serial", "Expires", "First seen", "Last seen", "State"], rows)}` +
    (revocations.length ? table(["Revoked", "By", "Certificate", "Reason"], revocations.map((r) => [esc(time(r.at)), esc(r.actor), esc(r.serial ?? "all"), esc(r.reason)])) : "") + form;
}

/** POST /fleet/:id/revoke on the console: revokes, audited under the operator's name, then back to the terminal page. */
export function registerRevokeRoute(app: FastifyInstance, store: Store, operator: (request: FastifyRequest) => string, now: () => number): void {
  app.post<{ Params: { id: string }; Body: Record<string, string> }>("/fleet/:id/revoke", async (request, reply) => {
    const terminalId = request.params.id.toUpperCase();
    if (!/^[0-9A-F]{12}$/.test(terminalId)) throw new FrontendError("VALIDATION", 400, "a terminal ID is 12 hex digits");
    const body = request.body ?? {};
    const serial = typeof body.serial === "string" && body.serial ? body.serial : null;
    const reason = typeof body.reason === "string" ? body.reason : "";
    const r = await store.terminals.revoke(terminalId, serial, reason, operator(request), now());
    request.log.info({ operator: operator(request), terminalId, serial: r.serial ?? "all", version: r.id }, "terminal revoked by an operator");
    return reply.code(303).header("location", `/fleet/${terminalId}`).send();
  });
}
