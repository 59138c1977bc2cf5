-- Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d):
-- one database per service, each owned by a role of its own. The passwords are for a
-- development machine only; compose.yaml passes the same ones to the services.
CREATE ROLE loansuite_auth LOGIN PASSWORD 'loansuite-auth-dev';
CREATE ROLE loansuite_loans LOGIN PASSWORD 'loansuite-loans-dev';
CREATE ROLE loansuite_audit LOGIN PASSWORD 'loansuite-audit-dev';
CREATE DATABASE loansuite_auth OWNER loansuite_auth;
CREATE DATABASE loansuite_loans OWNER loansuite_loans;
CREATE DATABASE loansuite_audit OWNER loansuite_audit;
