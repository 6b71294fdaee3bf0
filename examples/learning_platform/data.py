"""A small cohort: three learners, their goals, tasks and code (what the run plays through)."""

GOALS = [
    # user, goal id, title, description, completed?
    ("ana", "g-ana-1", "Build a REST API with FastAPI", "Learn routing, request validation and dependency injection in FastAPI.", True),
    ("ana", "g-ana-2", "Master SQL joins", "Practise inner, left and self joins on a shop database.", True),
    ("ana", "g-ana-3", "Learn Rust ownership", "Understand borrowing and lifetimes in Rust.", False),
    ("ben", "g-ben-1", "Create a Flask web service", "Write HTTP endpoints for a todo list with Flask and SQLAlchemy.", True),
    ("ben", "g-ben-2", "Train a first neural network", "Classify handwritten digits with PyTorch.", False),
    ("cleo", "g-cleo-1", "Automate reports with pandas", "Load CSV files, group and pivot them, export Excel reports.", True),
]

TASKS = [
    # user, goal, task id, text, minutes when done (None: still open)
    ("ana", "g-ana-1", "t-1", "Write a GET endpoint returning a user by id", 35),
    ("ana", "g-ana-1", "t-2", "Inject the database session with Depends", 50),
    ("ana", "g-ana-2", "t-3", "Join orders to customers and count orders per customer", 40),
    ("ben", "g-ben-1", "t-4", "Add a POST endpoint creating a todo item", 60),
    ("ben", "g-ben-2", "t-5", "Load MNIST and build a DataLoader", None),
    ("cleo", "g-cleo-1", "t-6", "Pivot monthly sales per region", 25),
]

CODE = [
    # user, snapshot id, task, code, validation score (None: not validated yet), reviewer feedback
    ("ana", "c-1", "t-1", "@app.get('/users/{id}')\nasync def get_user(id: str, db: Session = Depends(get_db)):\n"
     "    return db.query(User).filter(User.id == id).first()", 0.95, "Clean, uses dependency injection."),
    ("ben", "c-2", "t-4", "@app.post('/todos')\ndef create_todo(item: dict):\n    db = SessionLocal()\n"
     "    db.add(Todo(**item))\n    db.commit()", 0.55, "Opens its own session; inject it instead."),
    ("ana", "c-3", "t-3", "SELECT c.name, count(o.id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id"
     " GROUP BY c.name", 0.9, "Correct; LEFT JOIN keeps customers without orders."),
    ("cleo", "c-4", "t-6", "df.pivot_table(index='month', columns='region', values='sales', aggfunc='sum')", 0.85,
     "Good use of pivot_table."),
    ("ben", "c-5", "t-5", "loader = DataLoader(datasets.MNIST('.', download=True), batch_size=64)", None, None),
]
