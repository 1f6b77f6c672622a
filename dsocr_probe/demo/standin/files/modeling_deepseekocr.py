"""A miniature DeepSeek-OCR (v1) written from the checkpoint's published interface.

It keeps what a fine-tuning run depends on: the class and module names, the forward()
signature, the image-token layout, the vision path under no_grad and the way visual
features are written into the text embeddings. Dimensions are tiny so it runs on a CPU.

Like the published code it also carries what training never runs: an ``infer()`` that strips
its prompt with ``format_messages()``, generates, and parses boxes and lines out of the
generated text with ``eval`` (six times, plus once in ``extract_coordinates_and_label``), a
helper that draws and saves the results, and a SAM builder that reads a separate checkpoint
with ``torch.load`` only when it is given a path (loading the model never gives one).
"""

import math
import os
import re
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageOps
from torch import nn
from torch.nn import CrossEntropyLoss
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

# The published code imports these at module level. transformers 4.48 removed the first and
# 5.0 the second, so this module fails to import there the same way the checkpoint does.
from transformers.models.llama.modeling_llama import LlamaFlashAttention2  # noqa: F401
from transformers.utils.import_utils import is_torch_fx_available  # noqa: F401


class DeepseekOCRConfig(PretrainedConfig):
    model_type = "DeepseekOCR"

    def __init__(
        self,
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        moe_intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        n_routed_experts=4,
        num_experts_per_tok=2,
        n_shared_experts=1,
        first_k_dense_replace=1,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        max_position_embeddings=8192,
        initializer_range=0.02,
        vision_config=None,
        projector_config=None,
        bos_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.moe_intermediate_size = moe_intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.n_routed_experts = n_routed_experts
        self.num_experts_per_tok = num_experts_per_tok
        self.n_shared_experts = n_shared_experts
        self.first_k_dense_replace = first_k_dense_replace
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.vision_config = vision_config or {
            "patch_size": 16,
            "sam": {"width": 16, "heads": 2, "layers": 1, "window_size": 8, "downsample_channels": [16, 32]},
            "clip": {"width": 32, "heads": 2, "layers": 1, "mlp_ratio": 2},
        }
        self.projector_config = projector_config or {"projector_type": "linear", "input_dim": 64, "n_embed": hidden_size}
        super().__init__(
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )


# ---------------------------------------------------------------- language model


class DeepseekOCRRMSNorm(nn.Module):
    def __init__(self, size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rotary(position_ids, head_dim, theta, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device).float() / head_dim))
    angles = position_ids[..., None].float() * inv_freq
    emb = torch.cat((angles, angles), dim=-1)[:, None]  # [B, 1, T, head_dim]
    return emb.cos().to(dtype), emb.sin().to(dtype)


class DeepseekOCRAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(self, x, mask, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if self.num_kv_heads != self.num_heads:
            k = k.repeat_interleave(self.num_heads // self.num_kv_heads, dim=1)
            v = v.repeat_interleave(self.num_heads // self.num_kv_heads, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class DeepseekOCRMLP(nn.Module):
    def __init__(self, hidden_size, intermediate_size):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoEGate(nn.Module):
    """The router: a raw weight, not an nn.Linear (LoRA cannot target it)."""

    def __init__(self, config):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.weight = nn.Parameter(torch.empty(config.n_routed_experts, config.hidden_size))

    def forward(self, x):
        scores = F.linear(x.float(), self.weight.float()).softmax(dim=-1)
        weight, index = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        return index, weight.to(x.dtype)


class DeepseekOCRMoE(nn.Module):
    def __init__(self, config):
        super().__init__()
        size = config.moe_intermediate_size
        self.experts = nn.ModuleList(DeepseekOCRMLP(config.hidden_size, size) for _ in range(config.n_routed_experts))
        self.gate = MoEGate(config)
        self.shared_experts = DeepseekOCRMLP(config.hidden_size, size * config.n_shared_experts)

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        index, weight = self.gate(flat)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            hit = index == e
            rows = hit.any(dim=-1).nonzero().squeeze(-1)
            if rows.numel():
                w = (weight * hit).sum(dim=-1)[rows, None]
                out = out.index_add(0, rows, expert(flat[rows]) * w)
        return out.view_as(x) + self.shared_experts(x)


class DeepseekOCRDecoderLayer(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.self_attn = DeepseekOCRAttention(config)
        dense = layer_idx < config.first_k_dense_replace
        self.mlp = DeepseekOCRMLP(config.hidden_size, config.intermediate_size) if dense else DeepseekOCRMoE(config)
        self.input_layernorm = DeepseekOCRRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = DeepseekOCRRMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, mask, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), mask, cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


# ---------------------------------------------------------------- vision path


class SamAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, width * 3)
        self.proj = nn.Linear(width, width)

    def forward(self, x):  # [N, L, C]
        n, length, c = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, c))


class SamMLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.lin1 = nn.Linear(width, width * 2)
        self.lin2 = nn.Linear(width * 2, width)

    def forward(self, x):
        return self.lin2(F.gelu(self.lin1(x)))


class SamBlock(nn.Module):
    """Windowed attention, so full-size pages (80x80 patches) stay cheap."""

    def __init__(self, width, heads, window):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(width)
        self.attn = SamAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = SamMLP(width)

    def forward(self, x):  # [B, H, W, C]
        b, h, w, c = x.shape
        s = self.window
        ph, pw = -h % s, -w % s
        y = F.pad(self.norm1(x), (0, 0, 0, pw, 0, ph))
        hh, ww = h + ph, w + pw
        windows = y.view(b, hh // s, s, ww // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
        y = self.attn(windows).view(b, hh // s, ww // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hh, ww, c)
        x = x + y[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class SamPatchEmbed(nn.Module):
    def __init__(self, patch_size, width):
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).permute(0, 2, 3, 1)


class SamEncoder(nn.Module):
    """Patch embed, blocks, neck, then two stride-2 convs: 16 x 4 pixels per feature side."""

    def __init__(self, patch_size, cfg):
        super().__init__()
        width = cfg["width"]
        mid, out = cfg["downsample_channels"]
        self.patch_embed = SamPatchEmbed(patch_size, width)
        self.blocks = nn.ModuleList(SamBlock(width, cfg["heads"], cfg["window_size"]) for _ in range(cfg["layers"]))
        self.neck = nn.Conv2d(width, width, kernel_size=1, bias=False)
        self.net_2 = nn.Conv2d(width, mid, kernel_size=3, stride=2, padding=1, bias=False)
        self.net_3 = nn.Conv2d(mid, out, kernel_size=3, stride=2, padding=1, bias=False)

    def forward(self, pixels):
        x = self.patch_embed(pixels)
        for block in self.blocks:
            x = block(x)
        return self.net_3(self.net_2(self.neck(x.permute(0, 3, 1, 2))))


def build_sam_encoder(patch_size, cfg, checkpoint=None):
    return _build_sam(patch_size, cfg, checkpoint=checkpoint)


def _build_sam(patch_size, cfg, checkpoint=None):
    encoder = SamEncoder(patch_size, cfg)
    if checkpoint is not None:
        # As published: SAM weights from a separate file, read without weights_only.
        state_dict = torch.load(checkpoint)
        encoder.load_state_dict({k[30:]: v for k, v in state_dict.items() if "vision_tower_high" in k}, strict=True)
    return encoder


class ClipAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv_proj = nn.Linear(width, width * 3)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x):
        n, length, c = x.shape
        q, k, v = self.qkv_proj(x).view(n, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(n, length, c))


class ClipMLP(nn.Module):
    def __init__(self, width, ratio):
        super().__init__()
        self.fc1 = nn.Linear(width, width * ratio)
        self.fc2 = nn.Linear(width * ratio, width)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))


class ClipLayer(nn.Module):
    def __init__(self, width, heads, ratio):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(width)
        self.self_attn = ClipAttention(width, heads)
        self.layer_norm2 = nn.LayerNorm(width)
        self.mlp = ClipMLP(width, ratio)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class ClipTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList(ClipLayer(cfg["width"], cfg["heads"], cfg["mlp_ratio"]) for _ in range(cfg["layers"]))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class ClipEncoder(nn.Module):
    """Takes the SAM features as its patch embeddings, with a class token in front."""

    def __init__(self, cfg):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.empty(cfg["width"]))
        self.pre_layrnorm = nn.LayerNorm(cfg["width"])
        self.transformer = ClipTransformer(cfg)

    def forward(self, sam_features):
        tokens = sam_features.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        return self.transformer(self.pre_layrnorm(torch.cat([cls, tokens], dim=1)))


class MlpProjector(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.Linear(cfg["input_dim"], cfg["n_embed"])

    def forward(self, x):
        return self.layers(x)


# ---------------------------------------------------------------- inference helpers (never run by training)


def format_messages(conversations, system_prompt=""):
    """The `plain` conversation format of the official inference: every message stripped, then the whole prompt."""
    parts = [system_prompt.strip()] if system_prompt and system_prompt.strip() else []
    for message in conversations:
        parts.append((message.get("content") or "").strip())
    return "".join(parts).strip()


def re_match(text):
    """The grounding spans of a generated text: (whole span, label, coordinates as written)."""
    return re.findall(r"(<\|ref\|>(.*?)<\|/ref\|><\|det\|>(.*?)<\|/det\|>)", text, re.DOTALL)


def extract_coordinates_and_label(ref_text, image_width, image_height):
    try:
        label_type = ref_text[1]
        cor_list = eval(ref_text[2])  # as published: the generated box list is evaluated as Python
    except Exception:
        return None
    return label_type, cor_list


def draw_bounding_boxes(image, refs, output_path):
    """Draw every grounded box (coordinates on a 0..999 grid) and save the picture beside the text."""
    drawn = image.copy()
    draw = ImageDraw.Draw(drawn)
    for ref in refs:
        result = extract_coordinates_and_label(ref, image.width, image.height)
        if result is None:
            continue
        label_type, boxes = result
        for box in boxes:
            x1, y1, x2, y2 = (int(v / 999 * size) for v, size in zip(box, (image.width, image.height) * 2))
            draw.rectangle([x1, y1, x2, y2], outline=(255, 0, 0), width=2)
            draw.text((x1, max(y1 - 12, 0)), str(label_type), fill=(255, 0, 0))
    drawn.save(os.path.join(output_path, "result_with_boxes.jpg"))
    return drawn


def _global_view(image, size):
    """Resize and pad to size x size with the mean colour, then normalise to [-1, 1] (no crops)."""
    view = ImageOps.pad(image.convert("RGB").resize((size, size)), (size, size), color=(127, 127, 127))
    pixels = torch.frombuffer(bytearray(view.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1) / 255.0
    return ((pixels - 0.5) / 0.5)[None]


# ---------------------------------------------------------------- models


class DeepseekOCRPreTrainedModel(PreTrainedModel):
    config_class = DeepseekOCRConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["DeepseekOCRDecoderLayer"]

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=std)
        elif isinstance(module, MoEGate):
            module.weight.data.normal_(mean=0.0, std=std)
        elif isinstance(module, ClipEncoder):
            module.class_embedding.data.normal_(mean=0.0, std=std)
        elif isinstance(module, DeepseekOCRModel):
            module.image_newline.data.normal_(mean=0.0, std=std)
            module.view_separator.data.normal_(mean=0.0, std=std)


class DeepseekOCRModel(DeepseekOCRPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        d = config.hidden_size
        vision = config.vision_config
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.layers = nn.ModuleList(DeepseekOCRDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = DeepseekOCRRMSNorm(d, config.rms_norm_eps)
        self.sam_model = build_sam_encoder(vision["patch_size"], vision["sam"])
        self.vision_model = ClipEncoder(vision["clip"])
        self.projector = MlpProjector(config.projector_config)
        self.image_newline = nn.Parameter(torch.empty(d))
        self.view_separator = nn.Parameter(torch.empty(d))
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def _encode(self, pixels):
        """[n, 3, s, s] pixels -> [n, (s/64)^2, hidden] features, CLIP and SAM side by side."""
        sam = self.sam_model(pixels)
        clip = self.vision_model(sam)
        return self.projector(torch.cat([clip[:, 1:], sam.flatten(2).transpose(1, 2)], dim=-1))

    def _with_newlines(self, grid):
        """[rows, cols, d] -> rows of features, each row closed by the newline embedding."""
        newline = self.image_newline.to(grid.dtype).expand(grid.shape[0], 1, -1)
        return torch.cat([grid, newline], dim=1).reshape(-1, grid.shape[-1])

    def _image_features(self, patches, global_view, crop_shape):
        """Local crops (row by row), then the global view, then the view separator."""
        d = self.config.hidden_size
        parts = []
        if torch.sum(patches).item() != 0:
            width_crops, height_crops = int(crop_shape[0]), int(crop_shape[1])
            local = self._encode(patches)
            nq = math.isqrt(local.shape[1])
            local = local.view(height_crops, width_crops, nq, nq, d).permute(0, 2, 1, 3, 4)
            parts.append(self._with_newlines(local.reshape(height_crops * nq, width_crops * nq, d)))
        glob = self._encode(global_view)
        nb = math.isqrt(glob.shape[1])
        parts.append(self._with_newlines(glob.view(nb, nb, d)))
        parts.append(self.view_separator.to(glob.dtype)[None])
        return torch.cat(parts, dim=0)

    def forward(
        self,
        input_ids: torch.LongTensor = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        past_key_values: Optional[List[torch.FloatTensor]] = None,
        inputs_embeds: Optional[torch.FloatTensor] = None,
        use_cache: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        images: Optional[List[Tuple[torch.FloatTensor, torch.FloatTensor]]] = None,
        images_seq_mask: Optional[torch.BoolTensor] = None,
        images_spatial_crop: Optional[torch.LongTensor] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[Tuple, BaseModelOutputWithPast]:
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        batch, length = inputs_embeds.shape[:2]
        # The vision gate looks only at the first sample's global view.
        if (length != 1 or self.training) and torch.sum(images[0][1]).item() != 0:
            with torch.no_grad():
                features = [self._image_features(image[0], image[1], crop) for image, crop in zip(images, images_spatial_crop)]
            for idx, feats in enumerate(features):
                mask = images_seq_mask[idx].unsqueeze(-1)
                inputs_embeds[idx].masked_scatter_(mask, feats.to(inputs_embeds.dtype))

        if position_ids is None:
            position_ids = torch.arange(length, device=inputs_embeds.device).expand(batch, -1)
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=inputs_embeds.device)
        causal = torch.ones(length, length, dtype=torch.bool, device=inputs_embeds.device).tril()
        # Every query also sees itself, so a padded row never attends to nothing (no NaN).
        mask = (causal & attention_mask.bool()[:, None, None, :]) | torch.eye(length, dtype=torch.bool, device=causal.device)
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        cos, sin = _rotary(position_ids, head_dim, self.config.rope_theta, inputs_embeds.dtype)

        hidden = inputs_embeds
        all_hidden = (hidden,) if output_hidden_states else None
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                hidden = self._gradient_checkpointing_func(layer.__call__, hidden, mask, cos, sin)
            else:
                hidden = layer(hidden, mask, cos, sin)
            if output_hidden_states:
                all_hidden += (hidden,)
        hidden = self.norm(hidden)
        if return_dict is False:
            return (hidden,)
        return BaseModelOutputWithPast(last_hidden_state=hidden, past_key_values=None, hidden_states=all_hidden)


class DeepseekOCRForCausalLM(DeepseekOCRPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = DeepseekOCRModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        past_key_values: Optional[List[torch.FloatTensor]] = None,
        inputs_embeds: Optional[torch.FloatTensor] = None,
        labels: Optional[torch.LongTensor] = None,
        use_cache: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        images: Optional[List[Tuple[torch.FloatTensor, torch.FloatTensor]]] = None,
        images_seq_mask: Optional[torch.BoolTensor] = None,
        images_spatial_crop: Optional[torch.LongTensor] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[Tuple, CausalLMOutputWithPast]:
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            images=images,
            images_seq_mask=images_seq_mask,
            images_spatial_crop=images_spatial_crop,
            return_dict=True,
        )
        logits = self.lm_head(outputs.last_hidden_state).float()
        loss = None
        if labels is not None:
            shift_logits = logits[..., :-1, :].contiguous().view(-1, self.config.vocab_size)
            shift_labels = labels[..., 1:].contiguous().view(-1).to(shift_logits.device)
            loss = CrossEntropyLoss()(shift_logits, shift_labels)
        if return_dict is False:
            out = (logits,)
            return (loss,) + out if loss is not None else out
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=None, hidden_states=outputs.hidden_states)

    # -- inference (the published infer() in miniature; a training run never calls any of this)

    def prepare_inputs_for_generation(self, input_ids, images=None, images_seq_mask=None, images_spatial_crop=None,
                                      **kwargs):
        return {"input_ids": input_ids, "images": images, "images_seq_mask": images_seq_mask,
                "images_spatial_crop": images_spatial_crop}

    @torch.no_grad()
    def _greedy(self, input_ids, images, images_seq_mask, images_spatial_crop, max_new_tokens, eos_token_id):
        ids, mask = input_ids, images_seq_mask
        for _ in range(max_new_tokens):
            inputs = self.prepare_inputs_for_generation(ids, images, mask, images_spatial_crop)
            next_id = self(**inputs).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
            mask = torch.cat([mask, torch.zeros_like(next_id, dtype=torch.bool)], dim=1)
            if int(next_id) == eos_token_id:
                break
        return ids[:, input_ids.shape[1]:]

    def infer(self, tokenizer, prompt="", image_file="", output_path="", base_size=1024, image_size=640,
              crop_mode=True, save_results=False, max_new_tokens=32):
        """Read one page: the prompt as format_messages() strips it, the global view only (no crops)."""
        conversation = [{"role": "<|User|>", "content": prompt, "images": [image_file]},
                        {"role": "<|Assistant|>", "content": ""}]
        text = format_messages(conversation)
        image = Image.open(image_file).convert("RGB")
        size = image_size if not crop_mode else base_size
        n = math.ceil(size / 16 / 4)
        image_id = tokenizer.convert_tokens_to_ids("<image>")
        ids, mask = [tokenizer.bos_token_id], [False]
        for i, piece in enumerate(text.split("<image>")):
            if i:
                slots = n * (n + 1) + 1
                ids += [image_id] * slots
                mask += [True] * slots
            tokens = tokenizer.encode(piece, add_special_tokens=False)
            ids += tokens
            mask += [False] * len(tokens)
        device = self.lm_head.weight.device
        dtype = self.lm_head.weight.dtype
        images = [(torch.zeros(1, 3, size, size, dtype=dtype, device=device), _global_view(image, size).to(device, dtype))]
        output_ids = self._greedy(torch.tensor([ids], device=device), images, torch.tensor([mask], device=device),
                                  torch.tensor([[1, 1]], device=device), max_new_tokens, tokenizer.eos_token_id)
        outputs = tokenizer.decode(output_ids[0], skip_special_tokens=False)
        if save_results and "<image>" in text:
            os.makedirs(output_path, exist_ok=True)
            refs = re_match(outputs)
            draw_bounding_boxes(image, refs, output_path)
            if "line_type" in outputs:
                # Geometry answers come as a Python dict written out; the published code evaluates them.
                lines = eval(outputs)["Line"]["line"]
                line_type = eval(outputs)["Line"]["line_type"]
                endpoints = eval(outputs)["Line"]["line_endpoint"]
                canvas = image.copy()
                draw = ImageDraw.Draw(canvas)
                for line, kind in zip(lines, line_type):
                    p0 = eval(line.split(" -- ")[0])
                    p1 = eval(line.split(" -- ")[-1])
                    draw.line([tuple(p0), tuple(p1)], fill=(0, 0, 255) if kind == "--" else (0, 128, 0), width=2)
                for endpoint in endpoints:
                    label, point = endpoint.split(": ")[0], eval(endpoint.split(": ")[1])
                    draw.text(tuple(point), label, fill=(255, 0, 0))
                canvas.save(os.path.join(output_path, "geo.jpg"))
            with open(f"{output_path}/result.mmd", "w", encoding="utf-8") as f:
                f.write(outputs)
        return outputs
