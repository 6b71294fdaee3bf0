"""Fine-tuning jobs against a local server speaking the OpenAI files + fine_tuning.jobs API."""

from __future__ import annotations

import subprocess
import sys

import pytest

from learnloop.errors import NotFound, ProviderError
from learnloop.training.finetune import OpenAIFineTuning
from tests.fake_openai_server import FakeOpenAI


@pytest.fixture()
def fake():
    with FakeOpenAI() as f:
        yield f


@pytest.fixture()
def provider(fake):
    return OpenAIFineTuning(base_url=fake.base_url, api_key="sk-test", timeout=5)


@pytest.fixture(scope="module")
def dataset(client):
    ids = []
    for i in range(12):
        g = client.log(kind="chat", prompt=f"¿Cuál es el saldo del préstamo {i}?",
                       output_text=f"El saldo del préstamo {i} es {i * 1000} COP.", model="gpt-4o-mini",
                       links={"loan": str(i)})
        client.feedback(g.id, thumbs=1)
        ids.append(g.id)
    bad = client.log(kind="chat", prompt="¿Fecha de la cuota?", output_text="No sé.", model="gpt-4o-mini")
    client.feedback(bad.id, thumbs=-1)
    ds = client.training.create_dataset("ft", {"verdict": "POSITIVE"}, options={"validation": 0.25, "seed": 1})
    return ds, ids, bad.id


def events_of(client, job_id):
    with client.db.connection() as conn:
        return [r["event_type"] for r in conn.execute(
            "SELECT event_type FROM learnloop.events WHERE entity_type = 'finetune_job' AND entity_id = %s"
            " ORDER BY id", (str(job_id),)).fetchall()]


def test_job_goes_pending_running_succeeded_and_provenance_answers_both_ways(client, dataset, fake, provider):
    ds, ids, bad = dataset
    job = client.training.start_job(ds.id, base_model="gpt-4o-mini-2024-07-18",
                                    hyperparameters={"epochs": 2}, provider=provider)
    assert job.status == "pending" and job.provider_status == "validating_files"
    assert job.provider_job_id in fake.jobs and job.training_file_id in fake.files
    assert job.example_count == ds.counts["examples"] == 12
    # What the provider received: the train split in chat format, and the validation split.
    sent = fake.file_lines[job.training_file_id]
    assert len(sent) == ds.counts["train"]
    assert all([m["role"] for m in line["messages"]] == ["user", "assistant"] for line in sent)
    assert job.validation_file_id and len(fake.file_lines[job.validation_file_id]) == ds.counts["validation"]
    remote = fake.jobs[job.provider_job_id]
    assert remote["method"]["type"] == "supervised"
    assert remote["hyperparameters"]["n_epochs"] == 2

    seen = [job.status]
    progress = [job.progress]
    for _ in range(10):
        job = client.training.sync(job.id, provider=provider)
        seen.append(job.status)
        progress.append(job.progress)
        if job.status == "succeeded":
            break
    assert seen == ["pending", "running", "running", "running", "succeeded"]
    assert progress == pytest.approx([0, 100 / 3, 200 / 3, 100, 100])
    assert job.result_model == f"ft:gpt-4o-mini-2024-07-18:learnloop::{job.provider_job_id[-8:]}"
    assert job.trained_tokens == 1234 and job.finished_at and job.started_at
    assert job.hyperparameters["n_epochs"] == 2 and job.hyperparameters["batch_size"] == 1
    msgs = [e["message"] for e in client.training.job_events(job.id)]
    assert "The job has successfully completed" in msgs and any(m.startswith("Step 3/3") for m in msgs)
    assert events_of(client, job.id)[:2] == ["finetune_job.created", "finetune_job.pending"]
    assert "finetune_job.running" in events_of(client, job.id)
    assert "finetune_job.succeeded" in events_of(client, job.id)

    # Provenance, model -> generations: exactly the dataset's members.
    trained = client.training.trained_on(job.result_model)
    assert {r["generation_id"] for r in trained} == set(ids)
    assert {r["split"] for r in trained} == {"train", "validation"}
    # generation -> models.
    t = client.training.trace(ids[0])
    assert t["models_trained"] == [job.result_model]
    assert [d["name"] for d in t["datasets"]] == ["ft"]
    assert client.training.trace(bad)["models_trained"] == []
    # Using the model: generations logged with it link back to the job.
    g = client.log(kind="chat", prompt="¿Saldo?", output_text="...", model=job.result_model)
    assert client.training.trace(g.id)["logged_with_job"]["id"] == job.id
    assert [u["job_id"] for u in client.training.used_by(job.result_model)] == [job.id]
    assert client.training.job(job.provider_job_id).id == job.id


def test_job_failure_keeps_the_provider_message(client, dataset, fake, provider):
    ds, _, _ = dataset
    fake.fail_job = "Training file has 3 examples with missing assistant messages."
    job = client.training.start_job(ds.id, base_model="gpt-4o-mini-2024-07-18", provider=provider)
    for _ in range(5):
        job = client.training.sync(job.id, provider=provider)
    assert job.status == "failed"
    assert job.error == "Training file has 3 examples with missing assistant messages."
    assert job.result_model is None
    assert "finetune_job.failed" in events_of(client, job.id)


def test_upload_error_marks_job_failed_and_nothing_is_lost(client, dataset, fake, provider):
    ds, _, _ = dataset
    fake.fail_upload = 500
    before = {j.id for j in client.training.jobs()}
    with pytest.raises(ProviderError, match="provider answered 500: The server had an error") as exc:
        client.training.start_job(ds.id, base_model="gpt-4o-mini-2024-07-18", provider=provider)
    new = [j for j in client.training.jobs() if j.id not in before]
    assert len(new) == 1 and new[0].status == "failed"
    assert str(new[0].id) in str(exc.value)
    assert "The server had an error while processing your request." in new[0].error
    assert events_of(client, new[0].id) == ["finetune_job.created", "finetune_job.failed"]


def test_create_error_is_the_providers_message(client, dataset, fake, provider):
    ds, _, _ = dataset
    fake.fail_create = 400
    with pytest.raises(ProviderError, match="not available for fine-tuning"):
        client.training.start_job(ds.id, base_model="gpt-nope", provider=provider)
    assert client.training.jobs()[0].status == "failed"


def test_timeout_on_start_fails_the_job_and_on_sync_keeps_its_status(client, dataset, fake):
    ds, _, _ = dataset
    slow = OpenAIFineTuning(base_url=fake.base_url, api_key="sk-test", timeout=0.3)
    fake.delay = 1.0
    with pytest.raises(ProviderError, match="timeout"):
        client.training.start_job(ds.id, base_model="gpt-4o-mini-2024-07-18", provider=slow)
    assert client.training.jobs()[0].status == "failed"
    assert "timeout" in client.training.jobs()[0].error

    # the calls meant to succeed get a timeout a busy 2-core box cannot miss
    patient = OpenAIFineTuning(base_url=fake.base_url, api_key="sk-test", timeout=10)
    fake.delay = 0.0
    job = client.training.start_job(ds.id, base_model="gpt-4o-mini-2024-07-18", provider=patient)
    fake.delay = 1.0
    with pytest.raises(ProviderError, match="its status is kept"):
        client.training.sync(job.id, provider=slow)
    after = client.training.job(job.id)
    assert after.status == "pending" and "timeout" in after.sync_error
    fake.delay = 0.0
    again = client.training.sync(job.id, provider=patient)
    assert again.status == "running" and again.sync_error is None


def test_wrong_key_and_unknown_job_and_dataset(client, dataset, fake):
    ds, _, _ = dataset
    bad_key = OpenAIFineTuning(base_url=fake.base_url, api_key="sk-wrong", timeout=5)
    with pytest.raises(ProviderError, match="401: Incorrect API key"):
        client.training.start_job(ds.id, base_model="gpt-4o-mini-2024-07-18", provider=bad_key)
    with pytest.raises(NotFound):
        client.training.job("ftjob-doesnotexist")
    with pytest.raises(NotFound):
        client.training.start_job("no-such-dataset", base_model="m", provider=bad_key)
    with pytest.raises(NotFound):
        client.training.trained_on("ft:never-trained")


def test_preference_dataset_trains_with_dpo(client, fake, provider):
    a = client.log(kind="chat", prompt="¿Qué es la mora?", output_text="No sé.")
    client.feedback(a.id, thumbs=-1)
    b = client.log(kind="chat", prompt="¿Qué es la mora?", output_text="Es el retraso en el pago de una cuota.",
                   parent_id=a.id)
    client.feedback(b.id, thumbs=1)
    ds = client.training.create_dataset("dpo", {"since": a.created_at.isoformat()}, kind="preference")
    job = client.training.start_job(ds.id, base_model="gpt-4o-2024-08-06", provider=provider,
                                    hyperparameters={"beta": 0.1})
    line = fake.file_lines[job.training_file_id][0]
    assert fake.jobs[job.provider_job_id]["method"]["type"] == "dpo"
    assert line["preferred_output"][0]["content"] == "Es el retraso en el pago de una cuota."
    assert line["non_preferred_output"][0]["content"] == "No sé."
    assert line["input"]["messages"] == [{"role": "user", "content": "¿Qué es la mora?"}]
    for _ in range(5):
        job = client.training.sync(job.id, provider=provider)
    roles = {(r["generation_id"], r["role"]) for r in client.training.trained_on(job.result_model)}
    assert roles == {(b.id, "chosen"), (a.id, "rejected")}


def test_cli_finetune_start_status_sync_list(client, dataset, fake, cli_env):
    ds, _, _ = dataset
    env = {**cli_env, "LEARNLOOP_FINETUNE_BASE_URL": fake.base_url, "LEARNLOOP_FINETUNE_API_KEY": "sk-test"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    r = run("finetune", "start", "ft", "--base-model", "gpt-4o-mini-2024-07-18", "--epochs", "1", "--json")
    assert r.returncode == 0, r.stderr
    import json

    job = json.loads(r.stdout)
    assert job["status"] == "pending"
    for _ in range(4):
        r = run("finetune", "sync", job["id"], "--json")
        assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "succeeded"
    r = run("finetune", "status", job["provider_job_id"], "--json")
    assert json.loads(r.stdout)["result_model"].startswith("ft:gpt-4o-mini")
    r = run("finetune", "list")
    assert r.returncode == 0 and job["id"][:8] in r.stdout
    r = run("finetune", "status", "ftjob-unknown")
    assert r.returncode == 1 and r.stderr.strip().startswith("Error: no fine-tuning job")
    assert "Traceback" not in r.stderr
