"""transformers' code for a model_core classifier with mean pooling: BERT, the mean of the last layer's states over
the real tokens, dropout, a linear head (no [CLS] pooler).

model_core.checkpoint.save_model copies this file into every mean-pooled model directory, whose config.json names
these classes in `auto_map` and `architectures`, so that
`AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True)` loads the model and gives the
service's probabilities. model_core never imports it (it needs transformers). The weights are named as
BertForSequenceClassification's (bert.*, classifier.*), less the pooler.
"""
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class BertMeanPoolingConfig(BertConfig):
    # not "bert": without this file transformers refuses the directory, rather than loading it as a
    # BertForSequenceClassification that would read [CLS] through an untrained pooler
    model_type = "bert_mean_pooling"


class BertMeanPoolingForSequenceClassification(BertPreTrainedModel):
    config_class = BertMeanPoolingConfig

    def __init__(self, config: BertMeanPoolingConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, **kwargs) -> SequenceClassifierOutput:
        """(B, T) inputs as BertForSequenceClassification takes them -> (B, L) logits (+ the loss given labels)."""
        outputs = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        states = outputs.last_hidden_state  # (B, T, D)
        if attention_mask is None:
            attention_mask = torch.ones(states.shape[:2], device=states.device)
        mask = attention_mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1), 1 = real token
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, D)
        logits = self.classifier(self.dropout(pooled))  # (B, L)
        loss = None
        if labels is not None:
            if self.config.problem_type == "multi_label_classification":
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
            else:
                loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                        attentions=outputs.attentions)
