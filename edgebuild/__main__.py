from edgebuild.cli import main

raise SystemExit(main())
