-- Each segment's member count at each sample the daemon takes (at a resync,
-- at most once an hour, and after a reconcile that applied changes); rows
-- older than the size retention are pruned when a sample is taken.
CREATE TABLE segd_segment_sizes (
    segment TEXT NOT NULL,
    sampled_at TEXT NOT NULL,
    members INTEGER NOT NULL,
    PRIMARY KEY (segment, sampled_at)
);
CREATE INDEX segd_segment_sizes_at ON segd_segment_sizes (sampled_at);
-- The members of a segment's latest two samples, kept only for segments no
-- larger than the tracking cap, to say who entered and who left between them.
CREATE TABLE segd_segment_members (
    segment TEXT NOT NULL,
    sampled_at TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (segment, sampled_at, customer_id)
);
