/// The catalog's tables in PostgreSQL, one migration per step of the SQLite catalog's history.
/// Text columns compare bytewise (`COLLATE "C"`) so sorting and paging match SQLite exactly.
enum PostgresSchema {
    /// Each migration is a list of single statements (the extended protocol runs one at a time).
    static let migrations: [(id: String, statements: [String])] = [
        ("v1: images and members", [
            """
            CREATE TABLE images (
                id TEXT COLLATE "C" PRIMARY KEY,
                name TEXT COLLATE "C",
                status TEXT COLLATE "C" NOT NULL,
                visibility TEXT COLLATE "C" NOT NULL,
                protected BOOLEAN NOT NULL,
                os_hidden BOOLEAN NOT NULL,
                owner TEXT COLLATE "C",
                container_format TEXT COLLATE "C",
                disk_format TEXT COLLATE "C",
                size BIGINT,
                virtual_size BIGINT,
                min_disk BIGINT NOT NULL,
                min_ram BIGINT NOT NULL,
                checksum TEXT COLLATE "C",
                os_hash_algo TEXT COLLATE "C",
                os_hash_value TEXT COLLATE "C",
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                deleted_at BIGINT,
                tags JSONB NOT NULL,
                properties JSONB NOT NULL,
                version BIGINT NOT NULL
            )
            """,
            "CREATE INDEX images_created ON images(created_at, id)",
            "CREATE INDEX images_status_created ON images(status, created_at, id)",
            "CREATE INDEX images_owner_created ON images(owner, created_at, id)",
            "CREATE INDEX images_name ON images(name)",
            "CREATE INDEX images_updated ON images(updated_at, id)",
            "CREATE INDEX images_tags ON images USING GIN (tags jsonb_path_ops)",
            "CREATE INDEX images_properties ON images USING GIN (properties jsonb_path_ops)",
            """
            CREATE TABLE image_members (
                image_id TEXT COLLATE "C" NOT NULL REFERENCES images(id),
                member_id TEXT COLLATE "C" NOT NULL,
                status TEXT COLLATE "C" NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (image_id, member_id)
            )
            """,
            "CREATE INDEX image_members_member ON image_members(member_id, status)",
        ]),
        ("v2: tasks", [
            """
            CREATE TABLE tasks (
                id TEXT COLLATE "C" PRIMARY KEY,
                type TEXT NOT NULL,
                status TEXT COLLATE "C" NOT NULL,
                owner TEXT,
                image_id TEXT COLLATE "C",
                user_id TEXT,
                request_id TEXT,
                input TEXT NOT NULL,
                result TEXT,
                message TEXT NOT NULL,
                bytes_done BIGINT NOT NULL,
                bytes_total BIGINT,
                attempts BIGINT NOT NULL,
                lease_owner TEXT,
                lease_expires_at BIGINT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                expires_at BIGINT
            )
            """,
            "CREATE INDEX tasks_image ON tasks(image_id, created_at)",
            "CREATE INDEX tasks_runnable ON tasks(status, created_at) WHERE status IN ('pending', 'processing')",
        ]),
        ("v3: local accounts, API keys, project quotas", [
            """
            CREATE TABLE accounts (
                name TEXT COLLATE "C" PRIMARY KEY,
                user_id TEXT COLLATE "C" NOT NULL UNIQUE,
                project_id TEXT NOT NULL,
                roles TEXT NOT NULL,
                password_hash TEXT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE api_keys (
                key_id TEXT COLLATE "C" PRIMARY KEY,
                account_name TEXT COLLATE "C" NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
                secret_hash TEXT NOT NULL,
                created_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX api_keys_account ON api_keys(account_name)",
            """
            CREATE TABLE project_quotas (
                project_id TEXT COLLATE "C" PRIMARY KEY,
                image_count_total BIGINT,
                image_size_total BIGINT,
                image_stage_total BIGINT,
                image_count_uploading BIGINT
            )
            """,
        ]),
        ("v4: vendor extension documents, login sessions", [
            // TEXT, not JSONB: the documents come back byte for byte (JSONB would reorder object keys).
            "ALTER TABLE images ADD COLUMN extensions TEXT NOT NULL DEFAULT '{}'",
            """
            CREATE TABLE login_sessions (
                id_hash TEXT COLLATE "C" PRIMARY KEY,
                account_name TEXT COLLATE "C" NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
                csrf_token TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX login_sessions_expiry ON login_sessions(expires_at)",
        ]),
        ("v5: name rules", [
            "ALTER TABLE images ADD COLUMN name_rule TEXT",
            // Images made before through the front-ends whose names are unique keep that rule.
            """
            UPDATE images SET name_rule = 'name_per_owner'
                WHERE (CAST(extensions AS JSONB) -> 'avi') IS NOT NULL OR (CAST(extensions AS JSONB) -> 'danube' -> 'owner') IS NOT NULL
            """,
            "UPDATE images SET name_rule = 'cloud_image_in_sight' WHERE (CAST(extensions AS JSONB) -> 'scalr') IS NOT NULL",
            "CREATE INDEX images_owner_name ON images(owner, name)",
        ]),
        ("v6: login throttle", [
            // Failed logins per throttle key (see Identity's LoginThrottle); times in milliseconds.
            """
            CREATE TABLE login_throttle (
                key TEXT COLLATE "C" PRIMARY KEY,
                failures BIGINT NOT NULL,
                last_failure BIGINT NOT NULL
            )
            """,
            "CREATE INDEX login_throttle_last ON login_throttle(last_failure)",
        ]),
        // Kept after "v6" (login throttle): the nodes of a cluster and who writes an upload.
        ("v7: node heartbeats", [
            "CREATE TABLE nodes (id TEXT COLLATE \"C\" PRIMARY KEY, heartbeat_at BIGINT NOT NULL, started_at BIGINT NOT NULL)",
            "ALTER TABLE images ADD COLUMN writer_node TEXT",
        ]),
        // Metadata definitions (Glance's metadefs); contents follow their namespace's renames and deletion.
        ("v8: metadefs", PostgresCatalog.metadefSchema),
        // Every sort key walks an index in the list's full order: the key (NULLs first ascending, last
        // descending, as ListSQL orders them), then the created_at and id tie-breakers.
        ("v10: an index per sort key", [
            "DROP INDEX images_name",
            "CREATE INDEX images_name_created ON images(name NULLS FIRST, created_at, id)",
            "DROP INDEX images_updated",
            "CREATE INDEX images_updated_created ON images(updated_at, created_at, id)",
            "CREATE INDEX images_size_created ON images(size NULLS FIRST, created_at, id)",
            "CREATE INDEX images_disk_format_created ON images(disk_format NULLS FIRST, created_at, id)",
            "CREATE INDEX images_container_format_created ON images(container_format NULLS FIRST, created_at, id)",
        ]),
        // What ListPageCache checks before answering a page again: every committed write of images or
        // image_members (imaged's, another node's, an operator's SQL) moves the sum of `n`. The bump runs
        // at commit (a deferred trigger), once per transaction, on a row picked by the connection: a
        // writer waits for that row only while another commit on it finishes, and holds no lock anyone
        // else can want by then, so it adds no deadlock. The rows start at random values, so a catalog
        // dropped and made again never repeats a revision a node remembers.
        ("v11: image revisions", [
            "CREATE TABLE image_revisions (shard INT PRIMARY KEY, n BIGINT NOT NULL)",
            "INSERT INTO image_revisions (shard, n) SELECT g, CAST(random() * 1e12 AS BIGINT) FROM generate_series(0, 63) g",
            """
            CREATE FUNCTION imaged_bump_image_revision() RETURNS trigger LANGUAGE plpgsql
            SET search_path FROM CURRENT AS $$
            BEGIN
                IF current_setting('imaged.image_revision_bumped', true) IS DISTINCT FROM 'y' THEN
                    UPDATE image_revisions SET n = n + 1 WHERE shard = pg_backend_pid() % 64;
                    PERFORM set_config('imaged.image_revision_bumped', 'y', true);
                END IF;
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE CONSTRAINT TRIGGER images_revision AFTER INSERT OR UPDATE OR DELETE ON images
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION imaged_bump_image_revision()
            """,
            """
            CREATE CONSTRAINT TRIGGER image_members_revision AFTER INSERT OR UPDATE OR DELETE ON image_members
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION imaged_bump_image_revision()
            """,
        ]),
    ]
}
