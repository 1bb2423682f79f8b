-- A site store made by the code at 48be53c (before token expiry and last use): the
-- tokens table as it was, with a live, a revoked and a re-issued token, and one audit
-- row. tests/test_tokens_lifetime.py migrates it. Their secrets are below.
-- tablet-hall PzgWv_2pgVy2Ol8fq6kRwEst-Wdv35W46fE-nGfTmck
-- old-admin (live) zPX3D1P33rKUzXuPGg2g9oRFM8v_R3x1JZdRAWW3tlM
BEGIN TRANSACTION;
CREATE TABLE "alarms" (
   "id" INTEGER PRIMARY KEY,
   "code" TEXT NOT NULL,
   "severity" TEXT NOT NULL,
   "message" TEXT NOT NULL,
   "raised_ts" REAL NOT NULL,
   "cleared_ts" REAL,
   "acked_ts" REAL,
   "acked_by" TEXT
);
CREATE TABLE "commands" (
   "id" INTEGER PRIMARY KEY,
   "ts" REAL NOT NULL,
   "actor" TEXT NOT NULL,
   "role" TEXT NOT NULL,
   "command" TEXT NOT NULL,
   "args" TEXT NOT NULL,
   "outcome" TEXT NOT NULL,
   "detail" TEXT NOT NULL
);
INSERT INTO "commands" VALUES(1,1790000000.0,'cli:root','admin','token_create','{"name":"tablet-hall"}','accepted','x');
CREATE TABLE "events" (
   "id" INTEGER PRIMARY KEY,
   "ts" REAL NOT NULL,
   "kind" TEXT NOT NULL,
   "mode_from" TEXT,
   "mode_to" TEXT,
   "trigger" TEXT,
   "reason" TEXT NOT NULL,
   "data" TEXT NOT NULL
);
CREATE TABLE "meta" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
);
INSERT INTO "meta" VALUES('schema_version','1');
CREATE TABLE "state" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT NOT NULL,
   "updated_ts" REAL NOT NULL
);
CREATE TABLE telemetry ( key_id INTEGER NOT NULL REFERENCES telemetry_keys(id), ts REAL NOT NULL, value REAL NOT NULL, PRIMARY KEY (key_id, ts)) WITHOUT ROWID;
CREATE TABLE "telemetry_keys" (
   "id" INTEGER PRIMARY KEY,
   "key" TEXT NOT NULL
);
CREATE TABLE tokens ( id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_ts REAL NOT NULL, created_by TEXT NOT NULL, revoked_ts REAL, revoked_by TEXT);
INSERT INTO "tokens" VALUES(1,'tablet-hall','operator','c018f2384a8bc0334771291ddf008852daa7efd9831e0fe2e6ccb081818df5a5',1790000000.0,'cli:root',NULL,NULL);
INSERT INTO "tokens" VALUES(2,'old-admin','admin','203262f66d447edf19f4f6abc156eb299f68e74d8b3b7fc59514ba9e2c810e16',1790000100.0,'cli:root',1790000200.0,'cli:root');
INSERT INTO "tokens" VALUES(3,'old-admin','admin','39eadc5a60a814c55626bfef3f2c9441c48119193ebcaa20b7bd7bd18447d8ed',1790000300.0,'cli:root',NULL,NULL);
CREATE INDEX "events_ts"
    ON "events" ("ts");
CREATE INDEX "events_kind_ts"
    ON "events" ("kind", "ts");
CREATE INDEX "commands_ts"
    ON "commands" ("ts");
CREATE UNIQUE INDEX alarms_active_code ON alarms(code) WHERE cleared_ts IS NULL;
CREATE UNIQUE INDEX "telemetry_keys_key"
    ON "telemetry_keys" ("key");
CREATE UNIQUE INDEX tokens_live_name ON tokens(name) WHERE revoked_ts IS NULL;
COMMIT;
