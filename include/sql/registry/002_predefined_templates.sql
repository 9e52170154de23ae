-- One predefined template per source type: a connection_config to copy (secrets only as
-- {{ conn.<id>.<field> }} / {{ var.<name> }} placeholders) and an example mapping_config.
-- tests/registry checks that every template passes the connectors' and the mapper's validation.

INSERT INTO data_source_templates (template_name, template_type, source_type, template_config, is_predefined) VALUES
('JSON file', 'file', 'json', '{
  "connection_config": {"file_path": "/opt/airflow/include/demo/registry/actual_production.json",
                        "encoding": "utf-8", "records_path": "data"},
  "mapping_config": {"key_columns": ["id"], "cursor_field": "updated_at", "columns": [
    {"column": "id", "source": "id", "cast": "int"},
    {"column": "name", "source": "name"},
    {"column": "updated_at", "source": "updated_at", "cast": "timestamp"}]}
}'::jsonb, true),
('CSV file', 'file', 'csv', '{
  "connection_config": {"file_path": "/data/imports/production_data.csv", "delimiter": ",",
                        "has_header": true, "encoding": "utf-8"},
  "mapping_config": {"key_columns": ["machine_id", "produced_on"], "columns": [
    {"column": "machine_id", "source": "machine_id", "cast": "int"},
    {"column": "produced_on", "source": "date", "cast": "date", "format": "%d/%m/%Y"},
    {"column": "qty", "source": "qty", "cast": "decimal", "default": 0}]}
}'::jsonb, true),
('Excel workbook', 'file', 'excel', '{
  "connection_config": {"file_path": "/data/imports/production_plan.xlsx", "sheet": "Sheet1", "header_row": 1},
  "mapping_config": {"key_columns": ["plan_date", "line"], "columns": [
    {"column": "plan_date", "source": "Date", "cast": "date"},
    {"column": "line", "source": "Line"},
    {"column": "target_qty", "source": "Target", "cast": "int"}]}
}'::jsonb, true),
('Google Sheet', 'gsheet', 'gsheet', '{
  "connection_config": {"gcp_conn_id": "google_sheets", "spreadsheet_id": "REPLACE_WITH_SPREADSHEET_ID",
                        "range": "Sheet1!A1:Z"},
  "mapping_config": {"key_columns": ["code"], "columns": [
    {"column": "code", "source": "Code"},
    {"column": "description", "source": "Description"},
    {"column": "active", "source": "Active", "cast": "bool", "default": true}]}
}'::jsonb, true),
('Database table', 'database', 'database', '{
  "connection_config": {"conn_id": "production_db", "table": "public.production_data"},
  "mapping_config": {"key_columns": ["id"], "cursor_field": "updated_at", "columns": [
    {"column": "id", "source": "id", "cast": "int"},
    {"column": "machine_id", "source": "machine_id", "cast": "int"},
    {"column": "qty", "source": "qty", "cast": "decimal"},
    {"column": "updated_at", "source": "updated_at", "cast": "timestamp"}]}
}'::jsonb, true),
('REST API', 'api', 'api', '{
  "connection_config": {"base_url": "https://api.machine1.factory.example", "endpoint": "/api/v1/production",
                        "method": "GET",
                        "headers": {"Authorization": "Bearer {{ conn.machine1_api.password }}",
                                    "Accept": "application/json"},
                        "records_path": "data",
                        "pagination": {"type": "page", "page_param": "page", "size_param": "per_page", "size": 100},
                        "rate_limit": 100, "timeout": 30, "retries": 3},
  "mapping_config": {"key_columns": ["id"], "cursor_field": "updated_at", "columns": [
    {"column": "id", "source": "id", "cast": "int"},
    {"column": "status", "source": "status"},
    {"column": "updated_at", "source": "updated_at", "cast": "timestamp"}]}
}'::jsonb, true),
('Artisan command', 'artisan', 'artisan', '{
  "connection_config": {"command": ["php", "artisan", "data:sync"],
                        "parameters": ["--source=machine1", "--type=production", "--format=json"],
                        "working_directory": "/var/www/factory", "timeout": 60, "output_format": "json"},
  "mapping_config": {"key_columns": ["id"], "columns": [
    {"column": "id", "source": "id", "cast": "int"},
    {"column": "payload", "source": "payload", "cast": "json"}]}
}'::jsonb, true)
ON CONFLICT (template_name) DO NOTHING;
