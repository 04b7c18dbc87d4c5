"""The monitoring job: logged inferences vs the serving version's training data (PSI per feature,
prediction distributions per group) -> a monitoring table, a Markdown report and PNG plots.

Where the logged inferences come from (``data.logged_events``; both give the same columns, the
service's ``inference_event.event_table``, and feed the same pandas core in ``job``):

- ``local``: the Delta table ``inference_log`` under the tables root, written by the service's
  Delta sink (``mlkit serve --env local``).
- cloud: the service sends each event as JSON to the Event Hub ``evh-inference-logs``; the
  platform stack turns on Event Hubs Capture, which writes them as Avro files into the storage
  account's ``inference-logs`` container under
  ``<namespace>/<hub>/<partition>/<yyyy>/<MM>/<dd>/<HH>/<mm>/<ss>.avro`` (namespace identity,
  ``Storage Blob Data Contributor`` on that container only). The stacks set
  ``workloads.monitoring.capture_path`` to that folder's abfss:// URL; ``capture.read_capture``
  lists the files with Spark's ``binaryFile`` source (only files modified in the window, plus a
  margin), decodes them with fastavro on the workers and each event body with the service's own
  ``inference_event.from_json``. Any file that is not a readable Capture archive stops the
  job with its name before anything is written. Setting ``capture_path`` to a local directory
  runs the same reader on a copy of an archive.

Settings: ``workloads.monitoring`` (``settings.MonitoringSettings``): window, bins, thresholds,
minimum rows, ``fail_on_drift``, ``capture_path``.
"""
