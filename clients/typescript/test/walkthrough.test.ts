/**
 * The README's walk-through, through this package, against a real suite.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  ErrorCode,
  LoansuiteError,
  connect,
  loans as pb,
  auth as authPb,
  rethrow,
  unwrap,
  watchLoans,
  type Loansuite,
  type WatchEvent,
} from "../src/index.js";
import { startSuite, type RunningSuite } from "./suite.js";

let suite: RunningSuite;
let ada: Loansuite;
let lena: Loansuite;

const PASSWORD = "a long and unusual pass phrase";

/** The first of the month, `monthsAgo` months before today, as YYYY-MM-DD. */
function monthStart(monthsAgo: number): string {
  const now = new Date();
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - monthsAgo, 1));
  return day.toISOString().slice(0, 10);
}

/** The day before a YYYY-MM-DD date, a year on. */
function yearEnd(start: string): string {
  const day = new Date(`${start}T00:00:00Z`);
  day.setUTCFullYear(day.getUTCFullYear() + 1);
  day.setUTCDate(day.getUTCDate() - 1);
  return day.toISOString().slice(0, 10);
}

before(async () => {
  suite = await startSuite();
  ada = connect(suite.urls);
  lena = connect(suite.urls);
  for (const [who, email, name, role, organization] of [
    [ada, "ada@example.com", "Ada Lovelace", authPb.UserRole.BORROWER, "Ada Renewables"],
    [lena, "lena@example.com", "Lena Green", authPb.UserRole.LENDER, "Green Bank"],
  ] as const) {
    unwrap(
      await who.auth
        .register({ email, password: PASSWORD, name, role, organizationName: organization })
        .catch(rethrow),
    );
    await who.session.login(email, PASSWORD);
  }
});

after(async () => {
  await suite?.stop();
});

test("a loan from creation to a verified result, its margin and its audit trail", async () => {
  // The first annual period ended a month ago, so it can be reported now.
  const start = monthStart(13);
  const periodEnd = yearEnd(start);
  const created = unwrap(
    await ada.loans.createLoan({
      name: "Solar Park Term Loan",
      loanType: pb.LoanType.FIXED_RATE,
      currencyCode: "EUR",
      principalAmount: "1250000.00",
      committedAmount: "1000000.00",
      drawnAmount: "0.00",
      startDate: start,
      maturityDate: "2035-01-01",
    }),
  );
  assert.equal(created.state, pb.LoanState.DRAFT);
  assert.equal(created.principalAmount, "1250000.00");

  unwrap(await ada.loans.inviteLender({ loanId: created.id, lenderEmail: "lena@example.com" }));
  const kpi = unwrap(
    await ada.loans.createKpi({
      loanId: created.id,
      name: "Scope 1 and 2 emissions",
      kpiType: pb.KpiType.GHG_EMISSIONS,
      unit: "tCO2e",
      direction: pb.KpiDirection.LOWER_IS_BETTER,
      baselineValue: "12000",
      targetValue: "9000",
      observationFrequency: pb.ObservationFrequency.ANNUAL,
      effectiveFrom: start,
      effectiveTo: "2034-12-31",
    }),
  );
  unwrap(
    await ada.loans.createMarginRatchet({
      loanId: created.id,
      kpiId: kpi.id,
      stepUpBps: 10,
      stepDownBps: 5,
      capBps: 25,
    }),
  );
  unwrap(await lena.loans.acceptKpi({ kpiId: kpi.id }));
  unwrap(await ada.loans.submitLoan({ loanId: created.id }));
  unwrap(await lena.loans.approveLoan({ loanId: created.id }));
  const active = unwrap(await lena.loans.activateLoan({ loanId: created.id }));
  assert.equal(active.state, pb.LoanState.ACTIVE);

  const result = unwrap(
    await ada.loans.reportKpiResult({
      kpiId: kpi.id,
      periodStart: start,
      periodEnd,
      value: "8750.5",
      note: "Audited by an independent verifier",
    }),
  );
  unwrap(await lena.loans.verifyKpiResult({ kpiResultId: result.id }));
  const adjustments = unwrap(await ada.loans.listMarginAdjustments({ loanId: created.id }));
  assert.deepEqual(
    adjustments.adjustments.map((a) => [a.requestedBps, a.appliedBps, a.cumulativeBps]),
    [[-5, -5, -5]],
  );

  // Each change reaches the audit log within a moment of its commit.
  const actions = await eventually(async () => {
    const page = unwrap(await ada.audit.listAuditEvents({ filter: { resourceId: created.id } }));
    const seen = page.events.map((e) => e.action);
    assert.ok(seen.includes("LOAN_ACTIVATED"), `not yet: ${seen.join(", ")}`);
    return seen;
  });
  assert.ok(actions.includes("LOAN_CREATED"));
});

test("a mistake comes back as a LoansuiteError that names the field", async () => {
  const response = await ada.loans.createLoan({
    name: "Backwards",
    loanType: pb.LoanType.BALLOON,
    currencyCode: "EUR",
    principalAmount: "10.00",
    startDate: "2027-01-01",
    maturityDate: "2026-01-01",
  });
  assert.throws(
    () => unwrap(response),
    (err: unknown) =>
      err instanceof LoansuiteError &&
      err.code === ErrorCode.INVALID_ARGUMENT &&
      err.codeName === "INVALID_ARGUMENT" &&
      err.reason === "MATURITY_NOT_AFTER_START" &&
      err.fieldViolations.some((v) => v.field === "maturity_date") &&
      err.requestId !== "",
  );
});

test("every mutation carries a request id, so a retry returns the original", async () => {
  const request = {
    name: "Wind Farm Loan",
    loanType: pb.LoanType.FLOATING_RATE,
    currencyCode: "GBP",
    principalAmount: "500000.00",
    startDate: "2027-01-01",
    maturityDate: "2030-01-01",
    requestId: "client-test-replay-1",
  };
  const first = unwrap(await ada.loans.createLoan(request));
  const again = unwrap(await ada.loans.createLoan(request));
  assert.equal(again.id, first.id);
  // Without an id of its own, the client gives the call one: two calls, two loans.
  const { requestId: _, ...withoutId } = request;
  const one = unwrap(await ada.loans.createLoan(withoutId));
  const two = unwrap(await ada.loans.createLoan(withoutId));
  assert.notEqual(one.id, two.id);
});

test("a refreshed session keeps the calls going, and a watcher sees the change", async () => {
  const before = ada.session.session?.refreshToken;
  await ada.session.refresh();
  assert.notEqual(ada.session.session?.refreshToken, before);

  const stop = new AbortController();
  const events: WatchEvent[] = [];
  const subscribed = new Promise<void>((ready, fail) => {
    void (async () => {
      try {
        for await (const event of watchLoans(lena.loans, { signal: stop.signal })) {
          events.push(event);
          if (event.kind === "subscribed") {
            ready();
          }
        }
      } catch (err) {
        fail(err);
      }
    })();
  });
  await subscribed;
  // A call after the refresh goes out with the new access token.
  assert.equal(unwrap(await ada.loans.listLoans({ pageSize: 1 })).loans.length, 1);
  const created = unwrap(
    await ada.loans.createLoan({
      name: "Watched Loan",
      loanType: pb.LoanType.BALLOON,
      currencyCode: "USD",
      principalAmount: "1000.00",
      startDate: "2027-01-01",
      maturityDate: "2028-01-01",
    }),
  );
  unwrap(await ada.loans.inviteLender({ loanId: created.id, lenderEmail: "lena@example.com" }));
  await eventually(async () => {
    assert.ok(
      events.some((e) => e.kind === "change" && e.change.loanId === created.id),
      "the lender's watcher has not seen the invitation yet",
    );
  });
  stop.abort();
});

async function eventually<T>(check: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) {
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
