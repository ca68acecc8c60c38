/** China Standard Time (UTC+8, no daylight saving): card validity dates, and the date/time DEBIT FOR PURCHASE carries. One clock for the terminal and the front-end, so both read a card's dates the same way. */
export interface ChinaDateTime {
  /** YYYYMMDD */
  date: string;
  /** hhmmss */
  time: string;
}

export function chinaDateTime(epochMs: number): ChinaDateTime {
  const iso = new Date(epochMs + 8 * 3600_000).toISOString();
  return { date: iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10), time: iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) };
}
