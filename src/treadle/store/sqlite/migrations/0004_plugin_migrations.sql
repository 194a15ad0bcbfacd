-- Job kinds as plug-ins (ADR 0008): each plug-in's package owns its numbered migrations,
-- recorded here by plug-in name, so two plug-ins never compete for a number. Timestamps
-- are REAL seconds since the Unix epoch (UTC), as in 0001.
CREATE TABLE treadle_plugin_migrations (
    plugin      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    applied_at  REAL    NOT NULL,
    PRIMARY KEY (plugin, version)
);
