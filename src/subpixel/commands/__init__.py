"""One module per ``subpixel`` sub-command: ``add_arguments(parser)`` and ``run(args)``."""
