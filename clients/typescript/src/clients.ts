/**
 * The three services' clients over the gRPC protocol, with the package's interceptors.
 */
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AuditService } from "./gen/loansuite/audit/v1/audit_service_pb.js";
import { AuthService } from "./gen/loansuite/auth/v1/auth_service_pb.js";
import { LoanService } from "./gen/loansuite/loans/v1/loan_service_pb.js";
import { requestIds, retryUnavailable, type RetryOptions } from "./retry.js";
import { SessionKeeper } from "./session.js";

export interface ConnectOptions {
  /** Base URLs: `http://localhost:50051` (plaintext) or `https://…` (TLS). */
  auth: string;
  loans: string;
  audit: string;
  retry?: RetryOptions;
  /** Further interceptors, run after the bearer token is added. */
  interceptors?: Interceptor[];
  /** Passed to every transport: TLS material for https URLs, for example. */
  nodeOptions?: Parameters<typeof createGrpcTransport>[0]["nodeOptions"];
}

export interface Loansuite {
  auth: Client<typeof AuthService>;
  loans: Client<typeof LoanService>;
  audit: Client<typeof AuditService>;
  /** The signed-in session whose token the loans and audit clients send. */
  session: SessionKeeper;
}

/** Clients of the three services; loans and audit calls carry the session's bearer token. */
export function connect(options: ConnectOptions): Loansuite {
  const retry = retryUnavailable(options.retry);
  const transport = (baseUrl: string, interceptors: Interceptor[]): Transport =>
    createGrpcTransport({
      baseUrl,
      interceptors: [requestIds, retry, ...interceptors, ...(options.interceptors ?? [])],
      ...(options.nodeOptions === undefined ? {} : { nodeOptions: options.nodeOptions }),
    });
  const auth = createClient(AuthService, transport(options.auth, []));
  const session = new SessionKeeper(auth);
  const withToken = [session.interceptor];
  return {
    auth,
    loans: createClient(LoanService, transport(options.loans, withToken)),
    audit: createClient(AuditService, transport(options.audit, withToken)),
    session,
  };
}

/** A request id for one mutation, to be reused on every retry of it. */
export function newRequestId(): string {
  return crypto.randomUUID();
}
