"""
### tekmetric_sync

Fills the Tekmetric warehouse (**`tekmetric_warehouse`**) from Tekmetric's partner API
(**`tekmetric_api`**) every hour. Details: `docs/tekmetric-warehouse.md`.

* **Shops**: those the API token may read, narrowed by `shop_ids` and `shops.sync_enabled`.
  One mapped task group per shop (the map index shows the shop's name); per shop, in order:
  employees (re-read fully), customers, vehicles, repair orders with their jobs, labor, parts,
  sublets and fees, then the metrics of every shop-local day that changed.
* **Windows**: `updatedDateStart = cursor - overlap_minutes`, `updatedDateEnd = run start`, in
  slices of `window_days`; de-duplicated by id, checked against `totalElements` (re-read when
  pages shift), deleted records read by `deletedDateStart`. A first run, or `full_backfill`,
  starts at `backfill_start` (default: a year back).
* **One transaction per slice**: an RO with its children replaced as a set, its `ro_snapshots`
  (once per RO and posted/completed), the stale metric days, rejects, raw pages and the cursor
  `tekmetric_sync.<shop>.<entity>` in `sync_cursors`. The cursor never passes unwritten data,
  so clearing any task and rerunning it is safe.
* **Bad input**: a fractional cent, an unknown status and the like hold back that RO, named
  with its id in `sync_rejects`; past `max_rejects` per shop and entity the task fails.
  Variance between line items and Tekmetric's RO totals is recorded on snapshots and in
  `sync_log.details`.
* **API budget**: tasks that call the API run in pool `tekmetric_api` (4 slots) and split the
  connection's rate limit between the shops running at once (`api_concurrency`, keep it equal
  to the pool's slots); the hook retries 429/5xx/timeouts with exponential backoff.
* `snapshot_ro_ids` captures `manual` snapshots at the end of the run.
"""

from airflow.sdk import DAG, Param, chain, task, task_group

from datasync.defaults import DEFAULT_ARGS, START_DATE
from datasync.tekmetric.sync import POOL

SHOP_TASK = {"pool": POOL, "map_index_template": "{{ shop_label }}"}

with DAG(
    dag_id="tekmetric_sync",
    description="Hourly at minute 0 (UTC): Tekmetric partner API -> tekmetric_warehouse, per shop.",
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # cursors are per shop and entity: overlapping runs would only queue on their locks
    default_args=DEFAULT_ARGS,
    tags=["tekmetric", "warehouse", "sync"],
    doc_md=__doc__,
    params={
        "shop_ids": Param([], type=["array", "null"], items={"type": "integer"}, title="Shop ids",
                          description="Only these shops (empty: every shop the token may read)."),
        "full_backfill": Param(False, type="boolean", title="Full backfill",
                               description="Ignore the cursors: re-read everything from backfill_start and "
                                           "rewrite every RO (re-prices labor with today's cost rates)."),
        "backfill_start": Param(None, type=["null", "string"], format="date", title="Backfill start",
                                description="First day a backfill (or a shop's first run) reads; "
                                            "empty: 365 days before the run."),
        "overlap_minutes": Param(15, type="integer", minimum=0, title="Overlap (minutes)",
                                 description="Each window starts this long before the cursor (late commits, clocks)."),
        "window_days": Param(30, type="integer", minimum=1, title="Window slice (days)",
                             description="A backfill reads and commits in slices this long."),
        "max_rejects": Param(10, type="integer", minimum=0, title="Max rejects per shop and entity",
                              description="Records held back (named in sync_rejects) before the task fails."),
        "variance_tolerance_cents": Param(0, type="integer", minimum=0, title="Variance tolerance (cents)",
                                          description="Allowed per category, on top of 1 cent per rounded line."),
        "store_raw_payloads": Param(False, type="boolean", title="Store raw pages in tm_raw_payloads",
                                     description="Keep every API page as read, for audits and replays."),
        "raw_retention_days": Param(14, type="integer", minimum=0, title="Raw page retention (days)",
                                     description="Raw pages older than this are deleted at the start of each run."),
        "api_concurrency": Param(4, type="integer", minimum=1, title="Shops calling the API at once",
                                 description="Keep equal to the tekmetric_api pool's slots."),
        "snapshot_ro_ids": Param([], type=["array", "null"], items={"type": "integer"}, title="Manual snapshots",
                                 description="Repair order ids to snapshot (trigger 'manual') after the sync."),
    },
):

    @task
    def purge_raw_payloads(**context) -> int:
        from datasync.tekmetric.sync import task_prepare

        return task_prepare(context)

    @task(pool=POOL)
    def list_shops(**context) -> list[dict]:
        from datasync.tekmetric.sync import task_list_shops

        return task_list_shops(context)

    @task_group(group_id="shop")
    def shop_sync(shop: dict):
        @task(**SHOP_TASK)
        def employees(shop: dict, **context) -> dict:
            from datasync.tekmetric.sync import task_sync_entity

            return task_sync_entity("employees", shop, context)

        @task(**SHOP_TASK)
        def customers(shop: dict, **context) -> dict:
            from datasync.tekmetric.sync import task_sync_entity

            return task_sync_entity("customers", shop, context)

        @task(**SHOP_TASK)
        def vehicles(shop: dict, **context) -> dict:
            from datasync.tekmetric.sync import task_sync_entity

            return task_sync_entity("vehicles", shop, context)

        @task(**SHOP_TASK)
        def repair_orders(shop: dict, **context) -> dict:
            from datasync.tekmetric.sync import task_sync_entity

            return task_sync_entity("repair_orders", shop, context)

        @task(map_index_template="{{ shop_label }}")
        def metrics(shop: dict, **context) -> dict:
            from datasync.tekmetric.sync import task_metrics

            return task_metrics(shop, context)

        chain(employees(shop), customers(shop), vehicles(shop), repair_orders(shop), metrics(shop))

    @task
    def manual_snapshots(**context) -> list[int]:
        from datasync.tekmetric.sync import task_manual_snapshots

        return task_manual_snapshots(context)

    shops = list_shops()
    chain(purge_raw_payloads(), shops, shop_sync.expand(shop=shops), manual_snapshots())
