-- Billing data (SPEC §4): written by the billing system's sync and `segd demo-data`.
CREATE TABLE IF NOT EXISTS connectors (
    id TEXT PRIMARY KEY,
    name TEXT,
    kind TEXT,
    connection TEXT
);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    name TEXT,
    email TEXT,
    country TEXT,
    custom_data JSONB,
    created_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS customer_connectors (
    customer_id TEXT,
    connector_id TEXT,
    PRIMARY KEY (customer_id, connector_id)
);
CREATE TABLE IF NOT EXISTS payment_methods (
    id TEXT PRIMARY KEY,
    customer_id TEXT,
    type TEXT,
    status TEXT,
    connector_id TEXT NULL,
    is_default BOOLEAN
);
CREATE TABLE IF NOT EXISTS invoices (
    id TEXT PRIMARY KEY,
    customer_id TEXT,
    number TEXT,
    status TEXT,
    amount_cents BIGINT,
    currency TEXT,
    due_date DATE,
    created_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS monitors (
    id TEXT PRIMARY KEY,
    customer_id TEXT,
    name TEXT,
    state TEXT,
    updated_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS customer_connectors_connector ON customer_connectors (connector_id);
CREATE INDEX IF NOT EXISTS payment_methods_customer ON payment_methods (customer_id);
CREATE INDEX IF NOT EXISTS invoices_customer ON invoices (customer_id);
CREATE INDEX IF NOT EXISTS monitors_customer ON monitors (customer_id);
CREATE INDEX IF NOT EXISTS customers_country ON customers (country);
CREATE INDEX IF NOT EXISTS customers_custom_data ON customers USING gin (custom_data jsonb_path_ops);
CREATE INDEX IF NOT EXISTS invoices_status_due ON invoices (status, due_date, customer_id);
CREATE INDEX IF NOT EXISTS invoices_status_created ON invoices (status, created_at, customer_id);
CREATE INDEX IF NOT EXISTS payment_methods_status ON payment_methods (status, customer_id);
CREATE INDEX IF NOT EXISTS monitors_state ON monitors (state, customer_id);

-- segd's own state.
CREATE TABLE segd_definitions (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    hash TEXT NOT NULL,
    source TEXT NOT NULL,
    templates TEXT NOT NULL DEFAULT '{}',
    protect BOOLEAN NOT NULL DEFAULT FALSE,
    applied_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE segd_apply_history (
    id BIGSERIAL PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL,
    applied_by TEXT NOT NULL,
    git_commit TEXT,
    summary TEXT NOT NULL,
    plan TEXT NOT NULL
);
CREATE TABLE segd_locks (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    since TIMESTAMPTZ NOT NULL,
    expires TIMESTAMPTZ NOT NULL
);
