-- The artisan template names a command the platform allows in the registry policy (the Airflow
-- Variable datasync_registry_policy) instead of a program, and no longer picks the working
-- directory: both are the platform team's, not the registry row's. Rows that still spell out a
-- command line are refused at run time with a message saying how to migrate (docs/registry.md).

UPDATE data_source_templates
SET template_config = jsonb_set(template_config, '{connection_config}', '{
  "command": "data_sync",
  "parameters": ["--source=machine1", "--type=production", "--format=json"],
  "timeout": 60, "output_format": "json"}'::jsonb)
WHERE template_name = 'Artisan command' AND is_predefined;
