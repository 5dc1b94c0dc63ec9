""".github/workflows/enterprise-deploy.yml: valid, and the seed's pipeline shape."""

from __future__ import annotations

from pathlib import Path

import check_jsonschema
import yaml
from click.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "enterprise-deploy.yml"
SPEC = yaml.safe_load(WORKFLOW.read_text())


def validate_workflow(path: Path) -> Result:
    """``check-jsonschema`` (its console script's command, run in this process) with its
    bundled GitHub Actions schema: no network."""
    arguments = ["--builtin-schema", "vendor.github-workflows", str(path)]
    return CliRunner().invoke(check_jsonschema.main, arguments)


def test_the_workflow_is_valid_against_the_github_actions_schema():
    result = validate_workflow(WORKFLOW)
    assert result.exit_code == 0, result.output


def test_the_schema_check_refuses_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:", 1))
    result = validate_workflow(broken)
    assert result.exit_code == 1, result.output
    assert "runs_on" in result.output


def run_lines(job: dict) -> list[str]:
    return [line.strip() for step in job["steps"] for line in step.get("run", "").splitlines()]


def test_it_runs_on_pushes_to_main():
    # PyYAML reads the bare key `on` as True (YAML 1.1).
    assert SPEC[True]["push"] == {"branches": ["main"]}


def test_the_test_job_runs_the_readmes_test_command():
    assert "make test" in run_lines(SPEC["jobs"]["test"])
    assert "make test" in (ROOT / "README.md").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_deploy_job_needs_the_tests_and_builds_then_applies():
    deploy = SPEC["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    lines = run_lines(deploy)
    build = lines.index('docker build -t "$IMAGE" .')
    apply = lines.index("kubectl apply -f k8s/production/")
    assert build < apply
    assert "${{ github.sha }}" in deploy["env"]["IMAGE"]


def test_the_deploy_replaces_the_manifests_image_by_the_commits():
    (substitution,) = [
        line for line in run_lines(SPEC["jobs"]["deploy"]) if line.startswith("sed ")
    ]
    old = substitution.split("|")[1]
    deployment = (ROOT / "k8s" / "production" / "deployment.yaml").read_text()
    assert deployment.count(old) == 1, f"{old!r} must be the deployment's image line"


def test_secrets_come_from_the_repository_secrets_only():
    text = WORKFLOW.read_text()
    for name in ("KAILASH_NB_JWT_SECRET", "KAILASH_NB_DATABASE_URL", "KUBE_CONFIG"):
        assert f"${{{{ secrets.{name} }}}}" in text, name
    for job in SPEC["jobs"].values():
        for step in job["steps"]:
            assert "${{ secrets." not in step.get("run", ""), step  # via env, never inline
