-- Job kinds as plug-ins (ADR 0008): each plug-in's package owns its numbered migrations,
-- recorded here by plug-in name, so two plug-ins never compete for a number.
CREATE TABLE treadle_plugin_migrations (
    plugin      text        NOT NULL,
    version     integer     NOT NULL,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plugin, version)
);
