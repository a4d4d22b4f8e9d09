from semfs.cli import main

raise SystemExit(main())
