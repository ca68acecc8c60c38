/**
 * The settlement CSV neutralises cells a spreadsheet would run as formulas (issue 23, finding 5): every dangerous
 * prefix gets a leading apostrophe in the CSV, while the JSONL export keeps the value exactly as the terminal sent it.
 */
import assert from "node:assert/strict";
import { formatSettlement, SETTLEMENT_FIELDS, type SettlementRecord } from "../../../tools/frontend/purchases/service";

const record = (order: string, balanceBefore = 1000): SettlementRecord => ({
  purchaseId: "p-1", businessDay: "20261126", terminalId: "001122334455", tsn: 1, application: "tunion", issuer: "03104100", cityCode: "4100",
  cardType: 1, asn: "03100000000000000001", epSerial: 7, transactionType: 6, amount: 100, balanceBefore, date: "20261126", time: "120000",
  tac: "0A0B0C0D", keyIndex: 1, keyVersion: 1, algorithm: "3des", order,
});

/** RFC 4180 fields of one CSV line (quoted fields may hold commas, CR and doubled quotes). */
function fields(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = "";
      i++;
      for (;;) {
        if (line[i] === '"' && line[i + 1] === '"') { v += '"'; i += 2; } else if (line[i] === '"') { i++; break; } else v += line[i++];
      }
      out.push(v);
      i++;
    } else {
      const end = line.indexOf(",", i);
      out.push(line.slice(i, end < 0 ? line.length : end));
      i = end < 0 ? line.length + 1 : end + 1;
    }
  }
  return out;
}

describe("settlement CSV formula cells", () => {
  const orderColumn = SETTLEMENT_FIELDS.indexOf("order");
  const dangerous = ["=HYPERLINK(\"http://x\";\"y\")", "+SUM(1;1)", "-2+3", "@SUM(1,1)", "\t=1+1", "\r=1+1"];

  for (const order of dangerous) {
    it(`writes ${JSON.stringify(order)} as text with a leading apostrophe`, () => {
      const csv = formatSettlement([record(order)], "csv");
      // The record line: everything after the header's CRLF, up to the final CRLF (a quoted CR may sit inside).
      const body = csv.slice(csv.indexOf("\r\n") + 2, -2);
      const cells = fields(body);
      assert.equal(cells.length, SETTLEMENT_FIELDS.length);
      assert.equal(cells[orderColumn], `'${order}`);
    });
  }

  it("leaves harmless orders and numbers alone (a negative balance stays a number)", () => {
    const cells = fields(formatSettlement([record("ORDER-1", -150)], "csv").split("\r\n")[1]!);
    assert.equal(cells[orderColumn], "ORDER-1");
    assert.equal(cells[SETTLEMENT_FIELDS.indexOf("balanceBefore")], "-150");
  });

  it("keeps JSONL as it is", () => {
    for (const order of dangerous) assert.equal(JSON.parse(formatSettlement([record(order)], "jsonl")).order, order);
  });
});
