from atlas_core.cli import main

raise SystemExit(main())
