"""examples/rapicredit (seeds 001 + 004): Spanish policies searched in Spanish, answers
linked to client and loan, the admin review queue, the dictionary and field catalog, a
fine-tuning job against a local server speaking OpenAI's protocol with its provenance, and
the risk model's predictions with outcomes."""

from __future__ import annotations

from typing import Any

import pytest
from examples.rapicredit.app import run

import learnloop
from learnloop.training.finetune import OpenAIFineTuning
from tests.fake_openai_server import FakeOpenAI


@pytest.fixture(scope="module")
def result(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ll = client.scoped(tenant="rapicredit", project="asistente")
    with FakeOpenAI() as fake:
        prov = OpenAIFineTuning(base_url=fake.base_url, api_key="sk-test", timeout=5)
        return run(ll, out=lambda _: None, export_dir=str(tmp_path_factory.mktemp("rc")), finetune_provider=prov)


def test_spanish_policies_answer_the_questions(result: dict[str, Any]) -> None:
    assert result["ingested"] == ["processed", "processed"]
    by_q = {q: (a, docs) for q, a, docs in result["answers"]}
    a, docs = by_q["¿Cuándo me reportan a las centrales de riesgo?"]
    assert docs[0] == "politica_cobranza.md" and "60 días" in a
    a, docs = by_q["¿En cuánto tiempo responden una solicitud?"]
    assert docs[0] == "politica_prestamos.md" and "24 horas" in a
    a, docs = by_q["Estoy atrasado con mis cuotas, ¿qué intereses me cobran?"]
    assert docs[0] == "politica_cobranza.md" and "moratorios" in a
    assert sorted(result["loan_789"]) == sorted(["¿Cuándo me reportan a las centrales de riesgo?",
                                                 "Estoy atrasado con mis cuotas, ¿qué intereses me cobran?"])


def test_thumbs_down_goes_through_review_into_the_dictionary(result: dict[str, Any], client: learnloop.Client) -> None:
    assert len(result["queue"]) == 1 and result["queue_after"] == []
    ll = client.scoped(tenant="rapicredit", project="asistente")
    linked = ll.dictionary.improvements(feedback_id=result["queue"][0])
    assert [i["target_type"] for i in linked] == ["term"]
    assert linked[0]["target_id"] == ll.dictionary.get("mora")["id"]

def test_dictionary_and_catalog(result: dict[str, Any]) -> None:
    assert result["lookups"] == {"retraso en el pago": "cuotas.dias_mora",
                                 "cuánto debe el cliente": "prestamos.saldo_pendiente",
                                 "documento de identidad": "clientes.cedula"}
    assert sorted(result["fields"]) == ["cuotas.dias_mora", "prestamos.plazo_meses", "prestamos.tasa_interes"]


def test_fine_tuning_job_and_its_provenance(result: dict[str, Any]) -> None:
    assert result["dataset_examples"] == 4  # the conversations rated 4 or 5
    assert result["job"]["status"] == "succeeded" and result["job"]["model"]
    assert result["job"]["trained_on"] == 4


def test_risk_predictions_report(result: dict[str, Any]) -> None:
    r = result["risk"]
    assert (r["predictions"], r["with_outcome"]) == (6, 6)
    assert r["roc_auc"] == pytest.approx(1.0) and r["recall"] == pytest.approx(1.0)
    assert r["precision"] == pytest.approx(2 / 3)
