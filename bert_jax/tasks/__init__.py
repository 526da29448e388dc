"""What the training loop trains: pretraining and the fine-tuning tasks."""
