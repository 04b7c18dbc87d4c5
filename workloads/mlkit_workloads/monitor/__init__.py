"""The monitoring job: logged inferences vs the serving version's training data (PSI per feature,
prediction distributions per group) -> a monitoring table, a Markdown report and PNG plots."""
