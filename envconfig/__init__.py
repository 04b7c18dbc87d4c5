"""What an environment is: its settings, the names and tags they give every resource, how two
environments differ, and the errors a user can fix.

The kit's bottom layer (named for what it holds): stacks/, policies/, mlkit/ops and the CLI import
it; it imports none of them (tests/test_layering.py). It does import the workloads' settings
contract (``mlkit_workloads.settings``/``strict``/``model_names``/``target_runtime``/``graph``):
the ``workloads:`` section of an environment file *is* the settings model the jobs read, so the
workloads package is below this one, and imports nothing of the kit.

Where things live (add a new setting to the module of its concern; a new top-level section is a
field of :class:`~envconfig.environment.EnvironmentConfig` plus its model in its own module):

- ``environment``  EnvironmentConfig: identity (name, kind, location, prefix/suffix, subscription,
                   tenant, tags, prod_like) and one field per section; calls each section's
                   ``check_cloud`` for cloud environments.
- ``infra``        backend, principals, storage, key_vault (+ grants), container_registry, aks,
                   event_hubs, network; ``check_cloud``: grants/admin groups exist, private access
                   needs network.private. New Azure services (Data Factory, Azure ML, PostgreSQL)
                   go here or in a module of their own beside it, as optional sections.
- ``databricks``   databricks: sku, network flags, instance_pools, cluster_policy, job_cluster,
                   Unity Catalog metastore/catalog; ``check_cloud``: pools and policy agree.
- ``jobs``         jobs: timeouts, retries, concurrency, Quartz schedules per job (``cron``
                   validates the expressions).
- ``serving``      which model each job registers and the scoring service loads, and the checks
                   on those names (the ``workloads.serving`` settings themselves are the workloads').
- ``suppressions`` suppressions: policy waivers with reason and expiry.
- ``local``        local: the local runner's state dir, MLflow port, Spark cores.
- ``vault_permissions``  the Key Vault permission vocabulary (schema and rule packs share it).
- ``fields``       checks several sections share: UUIDs (subscription/tenant/object/application ids),
                   min/max pairs.
- ``synth_output`` the one reader of cdktf.out (manifest, stacks, outputs): stacks and policies both read it.
- ``naming``       every physical name (Names, names_for, Azure naming rules) and tags (tags_for,
                   MANDATORY_TAGS); a new resource's name is a Names property here.
- ``loader``       files -> config: extends, ${VAR}, line numbers, load_environment / load_all,
                   environment_names, DEFAULT_DIR, json_schema (environments/schema.json).
- ``diff``         two resolved environments, field by field.
- ``errors``       ConfigProblem / ConfigError (environment files), FieldProblem (cross-field
                   checks), UserError (every other mistake the user can fix).

Nothing is re-exported here: each name has one import path, the module of its concern.
"""
