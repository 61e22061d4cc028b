from evoquality.cli import main

raise SystemExit(main())
