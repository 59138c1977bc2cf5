/**
 * A real suite for the tests: `loansuite up` on free ports in a temporary data directory.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService } from "../src/gen/loansuite/auth/v1/auth_service_pb.js";
import { AuditService } from "../src/gen/loansuite/audit/v1/audit_service_pb.js";
import { LoanService } from "../src/gen/loansuite/loans/v1/loan_service_pb.js";

const ROOT = resolve(import.meta.dirname, "..", "..", "..", "..");
const LOANSUITE = process.env.LOANSUITE_BIN ?? join(ROOT, ".venv", "bin", "loansuite");

export interface RunningSuite {
  urls: { auth: string; loans: string; audit: string };
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => done(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Start the three services and wait until each answers a call. */
export async function startSuite(): Promise<RunningSuite> {
  const dataDir = mkdtempSync(join(tmpdir(), "loansuite-client-"));
  const [auth, loans, audit] = [await freePort(), await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOANSUITE_AUTH_PORT: String(auth),
    LOANSUITE_LOANS_PORT: String(loans),
    LOANSUITE_AUDIT_PORT: String(audit),
    LOANSUITE_AUTH_HTTP_PORT: "0",
    LOANSUITE_LOANS_HTTP_PORT: "0",
    LOANSUITE_AUDIT_HTTP_PORT: "0",
    LOANSUITE_LOG_LEVEL: "WARNING",
  };
  const child = spawn(LOANSUITE, ["up", "--data-dir", dataDir], { env, stdio: ["ignore", "inherit", "inherit"] });
  const urls = {
    auth: `http://127.0.0.1:${auth}`,
    loans: `http://127.0.0.1:${loans}`,
    audit: `http://127.0.0.1:${audit}`,
  };
  const stop = async (): Promise<void> => {
    await terminate(child);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await ready(urls, child);
  } catch (err) {
    await stop();
    throw err;
  }
  return { urls, stop };
}

async function ready(urls: RunningSuite["urls"], child: ChildProcess): Promise<void> {
  const probes = [
    () => createClient(AuthService, createGrpcTransport({ baseUrl: urls.auth })).listPublicKeys({}),
    () => createClient(LoanService, createGrpcTransport({ baseUrl: urls.loans })).getLoan({ loanId: "probe" }),
    () => createClient(AuditService, createGrpcTransport({ baseUrl: urls.audit })).listAuditEvents({}),
  ];
  const deadline = Date.now() + 60_000;
  for (const probe of probes) {
    for (;;) {
      if (child.exitCode !== null) {
        throw new Error(`loansuite up exited with status ${child.exitCode}`);
      }
      try {
        await probe(); // an envelope (even an error one) means the server answers
        break;
      } catch (err) {
        if (Date.now() > deadline) {
          throw new Error(`the suite did not answer within a minute: ${String(err)}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }
}

function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) {
    return Promise.resolve();
  }
  return new Promise((done) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("exit", () => {
      clearTimeout(kill);
      done();
    });
    child.kill("SIGTERM");
  });
}
