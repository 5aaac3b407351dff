"""The upload client (`serverless_pypi.upload_client`) is the command line's only: every module
of it stays out of the Lambda zip (scripts/build_lambda.py LEFT_OUT_MODULES), a new one too.

tests/deploy/test_lambda_zip.py checks, on a built zip, that no module in it imports one left out.
"""

from __future__ import annotations

from tests.helpers.terraform import load_build_script


def test_every_module_of_the_upload_client_is_left_out_of_the_lambda_zip() -> None:
    build = load_build_script()
    package = build.DEFAULT_SOURCE / "upload_client"
    modules = {
        f"serverless_pypi/{p.relative_to(build.DEFAULT_SOURCE).as_posix()}"
        for p in package.rglob("*.py")
    }
    assert "serverless_pypi/upload_client/__init__.py" in modules
    assert modules <= build.LEFT_OUT_MODULES, sorted(modules - build.LEFT_OUT_MODULES)
    # and its command line with it
    assert "serverless_pypi/adapters/upload_cli.py" in build.LEFT_OUT_MODULES
