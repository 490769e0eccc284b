"""``python -m organic.cli`` (and ``accelerate launch -m organic.cli``): the same command line as ``organic``."""

from organic.cli import main

main()
