import type { Application, Route, RoutingTable } from "../modules/frontend-client/client";

/** The routing table: which front-end (level 1 or 2) and key index serve a card, by city code and application. */
export class Routes {
  #table: RoutingTable | undefined;

  get table(): RoutingTable | undefined {
    return this.#table;
  }

  set table(table: RoutingTable | undefined) {
    this.#table = table;
  }

  lookup(cityCode: string, application: Application): Route | undefined {
    const routes = this.#table?.routes ?? [];
    return routes.find((r) => r.cityCode === cityCode && r.application === application) ??
      // A level-1 entry without a city ("*") serves every city the national key system covers.
      routes.find((r) => r.cityCode === "*" && r.application === application);
  }

  /** Every distinct front-end URL the table names. */
  urls(): string[] {
    const urls = new Set<string>();
    for (const r of this.#table?.routes ?? []) urls.add(r.url);
    return [...urls];
  }
}
