"""mlkit drift and issue 13's systems: what the inventory sees as managed, and which of their
attributes no allowlist rule may call noise."""

from __future__ import annotations

import pytest

from mlkit.ops.drift_rules import protected
from mlkit.ops.inventory import CloudObject, managed_ids, unmanaged

RG = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-mlk-prod-weu/providers"
ADF = f"{RG}/Microsoft.DataFactory/factories/adf-mlk-prod-weu"
MLW = f"{RG}/Microsoft.MachineLearningServices/workspaces/mlw-mlk-prod-weu"
APPI = f"{RG}/Microsoft.Insights/components/appi-mlk-prod-weu"
STML = f"{RG}/Microsoft.Storage/storageAccounts/stmlmlkprodweu"


def state(*resources: tuple[str, str]) -> dict:
    return {"values": {"root_module": {"resources": [
        {"mode": "managed", "type": t, "name": t.split("_")[-1], "values": {"id": i}} for t, i in resources]}}}


def test_the_factory_workspace_and_insights_are_managed_objects_not_unmanaged():
    managed = managed_ids(state(
        ("azurerm_data_factory", ADF), ("azurerm_machine_learning_workspace", MLW),
        # the provider writes Application Insights' id with a lower-case provider namespace
        ("azurerm_application_insights", APPI.replace("Microsoft.Insights", "microsoft.insights")),
        ("azurerm_storage_account", STML),
        # child resources of the factory: in state, never in ARM's resource-group listing
        ("azurerm_data_factory_pipeline", ADF + "/pipelines/pl-forecast")))
    cloud = [CloudObject("azure", "Microsoft.DataFactory/factories", ADF, "adf-mlk-prod-weu"),
             CloudObject("azure", "Microsoft.MachineLearningServices/workspaces", MLW, "mlw-mlk-prod-weu"),
             CloudObject("azure", "microsoft.insights/components", APPI, "appi-mlk-prod-weu"),
             CloudObject("azure", "Microsoft.Storage/storageAccounts", STML, "stmlmlkprodweu")]
    assert unmanaged(cloud, managed) == []
    # a factory made by hand next to them is reported
    handmade = CloudObject("azure", "Microsoft.DataFactory/factories", f"{RG}/Microsoft.DataFactory/factories/adf-manual",
                           "adf-manual")
    assert unmanaged([*cloud, handmade], managed) == [handmade]


@pytest.mark.parametrize("rtype,path,category", [
    ("azurerm_data_factory_linked_service_azure_sql_database", "use_managed_identity", "identity"),
    ("azurerm_data_factory_linked_service_data_lake_storage_gen2", "storage_account_key", "identity"),
    ("azurerm_data_factory_credential_user_managed_identity", "description", "identity"),
    ("azurerm_data_factory", "managed_virtual_network_enabled", "network"),
    ("azurerm_data_factory", "public_network_enabled", "network"),
    ("azurerm_data_factory_managed_private_endpoint", "fqdns", "network"),
    ("azurerm_machine_learning_workspace", "managed_network", "network"),
    ("azurerm_machine_learning_workspace", "storage_account_access_type", "permission"),
    ("azurerm_application_insights", "local_authentication_enabled", "permission"),
    ("azurerm_application_insights", "internet_query_enabled", "network"),
])
def test_identity_and_exposure_changes_of_the_new_systems_are_never_noise(rtype, path, category):
    assert protected(rtype, path) == category


def test_a_pipeline_definition_change_is_an_ordinary_change():
    assert protected("azurerm_data_factory_pipeline", "activities_json") == ""
