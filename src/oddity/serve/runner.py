"""`oddity serve`: load the models, open the store and run the app under uvicorn.

By default the store lives in a folder `oddity-store/` beside the first model: a SQLite
database `inspections.sqlite` and the image and map files in `files/`. `--store URL` puts the
rows in another database (e.g. a plant-wide PostgreSQL), `--files DIR` the files elsewhere.
Binding an address other than loopback needs an API key: an open service on a network would
let anyone score images and read the plant's record.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from oddity.core.errors import ConfigError
from oddity.serve.settings import ServiceSettings

STORE_FOLDER = "oddity-store"


@dataclass(frozen=True)
class ServeOptions:
    """What `oddity serve` was asked for."""

    models: list[str]
    host: str = "127.0.0.1"
    port: int = 8000
    store: str | None = None
    files: str | None = None
    settings: ServiceSettings = ServiceSettings()


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`.

    Parameters
    ----------
    host : str
        Host name or IP address to bind.

    Returns
    -------
    bool
        False for any other name or address.

    Examples
    --------
    >>> is_loopback("127.0.0.2"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(options: ServeOptions) -> None:
    """Refuse options that would expose an open service or cannot work.

    Parameters
    ----------
    options : ServeOptions
        What `oddity serve` was asked for.

    Raises
    ------
    ConfigError
        On a non-loopback host without an API key, a port outside 0..65535, a size or batch
        limit below 1, a negative queue or a batch wait outside 0..1000 ms.
    """
    if not is_loopback(options.host) and not options.settings.api_key:
        raise ConfigError(f"--host {options.host}: serving beyond this machine needs an API key; "
                          "give --api-key KEY (or ODDITY_API_KEY), or bind 127.0.0.1")
    if not 0 <= options.port <= 65535:
        raise ConfigError(f"--port {options.port}: must lie in 0..65535")
    settings = options.settings
    for name in ("max_upload_bytes", "max_pixels", "max_images", "batch"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be at least 1")
    if settings.queue < 0:
        raise ConfigError("--queue: must be 0 or more")
    if not 0 <= settings.batch_wait_ms <= 1000:
        raise ConfigError("--batch-wait-ms: must lie in 0..1000")


def store_locations(options: ServeOptions, first_model: Path) -> tuple[str, Path]:
    """Where the service keeps its rows and files.

    Parameters
    ----------
    options : ServeOptions
        Its `store` URL and `files` folder, when given, are taken as they are.
    first_model : pathlib.Path
        The first model served; the default store folder `oddity-store/` lies beside it.

    Returns
    -------
    url : str
        Database URL (default: SQLite ``oddity-store/inspections.sqlite``).
    files : pathlib.Path
        Folder of the file store (default: ``oddity-store/files``).
    """
    folder = first_model.resolve().parent / STORE_FOLDER
    url = options.store or f"sqlite:///{folder / 'inspections.sqlite'}"
    files = Path(options.files) if options.files else folder / "files"
    return url, files


def build_service(options: ServeOptions):
    """Load the models and open the store: the `InspectionService` to serve.

    Parameters
    ----------
    options : ServeOptions
        What `oddity serve` was asked for (checked first, see `check_options`).

    Returns
    -------
    InspectionService

    Raises
    ------
    ConfigError
        If the options are refused or a model cannot be found or served.
    """
    from oddity.serve.adapter import load_models, model_files
    from oddity.serve.files import FileStore
    from oddity.serve.service import InspectionService
    from oddity.serve.store import InspectionStore

    check_options(options)
    first = model_files(options.models)[0]
    url, files = store_locations(options, first)
    models = load_models(options.models)
    return InspectionService(models, InspectionStore.open(url), FileStore(files), options.settings)


def serve(options: ServeOptions) -> None:
    """Run the service until interrupted (see module docstring).

    Prints the models served and the URL, runs uvicorn, then closes the service.

    Parameters
    ----------
    options : ServeOptions
        What `oddity serve` was asked for.

    Raises
    ------
    ConfigError
        As `build_service`.
    """
    import uvicorn

    from oddity.serve.app import create_app

    service = build_service(options)
    app = create_app(service)
    names = ", ".join(f"{m.name} ({m.detector_name}, version {m.version})" for m in service.models.values())
    url = service.store.engine.url.render_as_string(hide_password=True)
    print(f"serving {names} at http://{options.host}:{options.port}/ui/ "
          f"(API docs /docs; store {url}; files {service.files.root})", flush=True)
    try:
        uvicorn.run(app, host=options.host, port=options.port, log_level="warning",
                    timeout_graceful_shutdown=10)
    finally:
        service.close()


def api_key_from_environment(given: str | None) -> str | None:
    """`--api-key` if given, else the `ODDITY_API_KEY` environment variable, else None.

    Parameters
    ----------
    given : str or None
        The `--api-key` value.

    Returns
    -------
    str or None
        The key; an empty one counts as none.
    """
    return given or os.environ.get("ODDITY_API_KEY") or None


def add_arguments(parser) -> None:
    """Add the options of `oddity serve` to a parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The `serve` sub-command's parser.
    """
    defaults = ServiceSettings()
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help=".oddity model files (image or series), export folders "
                        "(`oddity export`), or folders of them (name = file or folder name)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; "
                        "any other needs --api-key)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--store", metavar="URL", help="database URL (default: SQLite in "
                        "oddity-store/ beside the first model; postgresql://USER@HOST/DB for a shared store)")
    parser.add_argument("--files", metavar="DIR", help="folder of stored images and maps "
                        "(default: oddity-store/files beside the first model)")
    parser.add_argument("--api-key", metavar="KEY", help="key required in the X-API-Key header "
                        "(default: $ODDITY_API_KEY; none: open on loopback only)")
    parser.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_bytes / 2**20,
                        metavar="MB", help="largest request body")
    parser.add_argument("--max-pixels", type=int, default=defaults.max_pixels, metavar="N",
                        help="largest width x height of an image")
    parser.add_argument("--batch", type=int, default=defaults.batch, metavar="N",
                        help="most images of concurrent requests scored in one call")
    parser.add_argument("--batch-wait-ms", type=float, default=defaults.batch_wait_ms, metavar="MS",
                        help="longest wait for more requests to fill a batch")
    parser.add_argument("--queue", type=int, default=defaults.queue, metavar="N",
                        help="requests waiting for a worker before 503 answers")


def run_command(args) -> None:
    """Run `oddity serve` from parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `models`, `host`, `port`, `store`, `files`, `api_key`, `max_upload_mb`,
        `max_pixels`, `batch`, `batch_wait_ms` and `queue`.

    Raises
    ------
    ConfigError
        As `serve`.
    """
    settings = ServiceSettings(api_key=api_key_from_environment(args.api_key),
                               max_upload_bytes=int(args.max_upload_mb * 2**20),
                               max_pixels=args.max_pixels, batch=args.batch,
                               batch_wait_ms=args.batch_wait_ms, queue=args.queue)
    serve(ServeOptions(models=args.models, host=args.host, port=args.port, store=args.store,
                       files=args.files, settings=settings))
