"""``onyx install`` / ``python -m onyx_dagster.install``: the tool images, and what they need.

    python -m onyx_dagster.install status                  # Docker, NVIDIA runtime, which images exist
    python -m onyx_dagster.install install                 # pull what is missing (needs --prefix)
    python -m onyx_dagster.install install --build         # build what is missing (docker-compose.yml)
    python -m onyx_dagster.install install --build --cpu-base --tools ingest sfm
                                                           # no registry at all: Debian base (debootstrap)
    python -m onyx_dagster.install install --build --tools openmvs --openmvs-sources DIR
                                                           # OpenMVS from tarballs, no GitHub
    python -m onyx_dagster.install install --weights       # the SegFormer weights for the local runner
                                                           # (ONYX_WEIGHTS; --weights-from DIR: offline)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..settings import OnyxSettings
from .docker import DockerProblem
from .images import BASE, TOOLS, install, status


def main(argv: Sequence[str] | None = None) -> int:
    settings = OnyxSettings.from_env()
    parser = argparse.ArgumentParser(prog="onyx install", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("install", "status"):
        command = sub.add_parser(name)
        command.add_argument("--prefix", default=settings.image_prefix,
                             help="registry prefix, e.g. ghcr.io/ORG/ (ONYX_IMAGE_PREFIX)")
        command.add_argument("--tag", default=settings.image_tag, help="image tag (ONYX_IMAGE_TAG)")
    install_cmd = sub.choices["install"]
    install_cmd.add_argument("--build", action="store_true", help="build from docker-compose.yml instead of pulling")
    install_cmd.add_argument("--tools", nargs="+", choices=(BASE, *TOOLS), help="default: all tools")
    install_cmd.add_argument("--cpu-base", action="store_true",
                             help="no registry: build onyx-base on a debootstrapped Debian root image (CPU only)")
    install_cmd.add_argument("--root-image", default=None,
                             help="what onyx-base is built FROM (ONYX_ROOT_IMAGE; default the CUDA/PyTorch runtime)")
    install_cmd.add_argument("--ca-bundle", default=None,
                             help="CA bundle pip trusts during builds, e.g. /etc/ssl/certs/ca-certificates.crt "
                                  "(ONYX_BUILD_CA_BUNDLE)")
    install_cmd.add_argument("--openmvs-sources", default=None, metavar="DIR",
                             help="folder with openMVS-v2.3.0.tar.gz and VCG-658ba36d.tar.gz: the openmvs image "
                                  "compiles them (sha256-checked) instead of cloning GitHub (ONYX_OPENMVS_SOURCES)")
    install_cmd.add_argument("--network", default=None, help="network of build steps: default | host (ONYX_BUILD_NETWORK)")
    install_cmd.add_argument("--pip-index-url", default=None, help="ONYX_PIP_INDEX_URL")
    install_cmd.add_argument("--pip-extra-index-url", default=None, help="ONYX_PIP_EXTRA_INDEX_URL")
    install_cmd.add_argument("--pip-trusted-host", default=None, help="ONYX_PIP_TRUSTED_HOST")
    install_cmd.add_argument("--force", action="store_true", help="rebuild / re-pull images that are present")
    install_cmd.add_argument("--weights", action="store_true",
                             help=f"instead of images: the SegFormer weights the local runner's masks step loads, "
                                  f"into {settings.weights} (ONYX_WEIGHTS), hashed and verified")
    install_cmd.add_argument("--weights-from", metavar="DIR", type=Path,
                             help="with --weights: copy them from a save_pretrained folder instead of the model hub")
    install_cmd.add_argument("--model-id", default=None, help="with --weights: the checkpoint (default: the masks "
                                                              "step's model_id)")
    install_cmd.add_argument("--verify", action="store_true",
                             help="with --weights: hash the installed weights against their record, install nothing")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    if args.command == "install" and (args.weights or args.weights_from or args.verify):
        return _weights(args, settings, say)
    try:
        if args.command == "status":
            return status(args.prefix, args.tag, out=say)
        report = install(
            build=args.build, tools=args.tools, prefix=args.prefix, tag=args.tag, root_image=args.root_image,
            cpu_base=args.cpu_base, ca_bundle=args.ca_bundle, openmvs_sources=args.openmvs_sources, network=args.network,
            pip_index_url=args.pip_index_url, pip_extra_index_url=args.pip_extra_index_url,
            pip_trusted_host=args.pip_trusted_host, force=args.force, settings=settings, out=say)
    except (DockerProblem, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bad = [r for r in report.results if r.action in ("failed", "skipped")]
    say(f"{len(report.results) - len(bad)} image(s) ready, {len(bad)} not"
        + (": " + ", ".join(f"{r.image} ({r.action})" for r in bad) if bad else ""))
    return 0 if not bad else 1


def _weights(args, settings: OnyxSettings, say) -> int:
    from onyx_segformer.config import DEFAULT_MODEL_ID

    from .weights import WeightsError, install_weights, segformer_folder, verify

    try:
        if args.verify:
            folder = segformer_folder(settings.weights)
            record = verify(folder, full=True, bar_label="verifying")
            say(f"SegFormer weights in {folder} verified: {len(record['files'])} files match their sha256 "
                f"({record.get('model_id')}, from {record.get('origin')})")
            return 0
        install_weights(settings.weights, model_id=args.model_id or DEFAULT_MODEL_ID, source=args.weights_from,
                        force=args.force, out=say)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write the weights under {settings.weights} ({error.strerror or error}): choose another "
              "folder with ONYX_WEIGHTS", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
